"""The demo library's teaching notes in French and Spanish (the English ones are in
demo_library.py): a demo case shows a reader of each working language a note in theirs."""

from __future__ import annotations

NBSP = "\u00a0"  # French typography: a no-break space before ':' ';' '?' '!'

PHANTOM = {
    "fr": "Fantôme synthétique (pas une image de patient).",
    "es": "Maniquí sintético (no es una imagen de un paciente).",
}

TEACHING = {
    "fr": {
        "infiltrate": f"Infiltrat ou condensation{NBSP}: opacité alvéolaire mal limitée. "
                      f"Évocateur de tuberculose{NBSP}: frottis et cultures des expectorations "
                      "nécessaires.",
        "cavitary_lesion": f"Lésion cavitaire{NBSP}: opacité annulaire à paroi épaisse et à "
                           "centre clair, typique d'une tuberculose post-primaire active. "
                           "Évocatrice de tuberculose.",
        "nodule": "Nodule à contours mal définis (tel un tuberculome). Évocateur de "
                  "tuberculose.",
        "pleural_effusion": f"Épanchement pleural{NBSP}: comblement du cul-de-sac "
                            "costodiaphragmatique avec ménisque. Évocateur de tuberculose "
                            "(la DS-3030 le classe parmi les anomalies nécessitant des "
                            "expectorations).",
        "hilar_adenopathy": f"Adénopathies hilaires/médiastinales{NBSP}: élargissement lobulé "
                            "du hile. Évocatrices de tuberculose, surtout primaire.",
        "miliary": f"Aspect miliaire{NBSP}: d'innombrables micronodules dans les deux "
                   "poumons. Évocateur de tuberculose.",
        "fibrosis": "Opacités réticulaires évocatrices de fibrose dans une région supérieure. "
                    f"Évocatrices de tuberculose (ancienne ou active){NBSP}: expectorations "
                    "nécessaires.",
        "calcified_nodule": f"Nodule pulmonaire calcifié{NBSP}: petit et très dense. Isolé, il "
                            "ne nécessite pas d'expectorations et n'est pas classé en Classe B "
                            "Autre.",
    },
    "es": {
        "infiltrate": "Infiltrado o consolidación: opacidad del espacio aéreo mal definida. "
                      "Sugestivo de TB: se necesitan baciloscopias y cultivos de esputo.",
        "cavitary_lesion": "Lesión cavitada: opacidad anular de pared gruesa con centro "
                           "radiolúcido, típica de la TB posprimaria activa. Sugestiva de TB.",
        "nodule": "Nódulo de bordes mal definidos (como un tuberculoma). Sugestivo de TB.",
        "pleural_effusion": "Derrame pleural: seno costofrénico borrado con menisco. Sugestivo "
                            "de TB (la DS-3030 lo incluye entre los hallazgos que requieren "
                            "esputo).",
        "hilar_adenopathy": "Adenopatías hiliares/mediastínicas: aumento lobulado del hilio. "
                            "Sugestivas de TB, sobre todo de TB primaria.",
        "miliary": "Patrón miliar: innumerables micronódulos en ambos pulmones. Sugestivo "
                   "de TB.",
        "fibrosis": "Opacidades reticulares sugestivas de fibrosis en un campo superior. "
                    "Sugestivas de TB (antigua o activa): se necesita esputo.",
        "calcified_nodule": "Nódulo pulmonar calcificado: pequeño y muy denso. Aislado, no "
                            "requiere esputo y no se clasifica como Clase B Otra.",
    },
}

NORMAL = {
    "fr": f"Aucune anomalie{NBSP}: les expectorations ne sont pas nécessaires.",
    "es": "Sin anomalías: no se necesita esputo.",
}

FAULTS = {
    "fr": {
        "apices_cut": f"Qualité d'image{NBSP}: collimation trop basse, les deux apex "
                      "pulmonaires sont coupés (critère d'inclusion non rempli).",
        "overexposed": f"Qualité d'image{NBSP}: surexposée, les champs pulmonaires sont "
                       "brûlés et leur trame perdue.",
        "underexposed": f"Qualité d'image{NBSP}: sous-exposée, image grise et bruitée, les "
                        "vertèbres ne se voient pas à travers le cœur.",
    },
    "es": {
        "apices_cut": "Calidad de imagen: colimación demasiado baja, ambos vértices "
                      "pulmonares quedan cortados (falla la inclusión).",
        "overexposed": "Calidad de imagen: sobreexpuesta, los campos pulmonares están "
                       "quemados y se pierde su trama.",
        "underexposed": "Calidad de imagen: subexpuesta, imagen gris y con ruido; las "
                        "vértebras no se ven a través del corazón.",
    },
}

PRIOR = {
    "fr": "Comparer avec le cliché antérieur d'il y a un an (disposition Actuel + antérieur)"
          f"{NBSP}: les modifications sont apparues depuis.",
    "es": "Compare con la placa previa de hace un año (disposición Actual + previa): los "
          "cambios son nuevos desde entonces.",
}

RG1 = {
    "fr": "Une vraie radiographie thoracique numérisée de face PA (MONOCHROME1, affichée "
          "inversée). Multiples opacités arrondies, assez bien limitées, de tailles variées "
          "dans les deux poumons. En termes DS-3030, ce sont des nodules bien limités non "
          "calcifiés, une anomalie qui nécessite frottis et cultures des expectorations"
          f"{NBSP}; le diagnostic différentiel comprend des métastases. Cet exemple public "
          f"n'a pas de diagnostic publié{NBSP}: la lecture de référence est une lecture de "
          f"démonstration. Essayez de resserrer la fenêtre{NBSP}: celle du fichier est très "
          "large.",
    "es": "Una radiografía de tórax PA computarizada real (MONOCHROME1: se muestra "
          "invertida). Múltiples opacidades redondeadas, bastante bien delimitadas, de tamaño "
          "variable en ambos pulmones. En términos de la DS-3030 son nódulos bien delimitados "
          "no calcificados, un hallazgo que requiere baciloscopias y cultivos de esputo; el "
          "diagnóstico diferencial incluye metástasis. Este ejemplo público no tiene "
          "diagnóstico publicado: la lectura de referencia es una lectura de demostración. "
          "Pruebe a estrechar la ventana: la del propio archivo es muy amplia.",
}


def phantom_notes(findings: tuple[str, ...], fault: str | None, prior: bool
                  ) -> dict[str, str]:
    """A phantom case's French and Spanish notes, sentence for sentence as the English."""
    notes = {}
    for language in ("fr", "es"):
        lines = [PHANTOM[language]] + [TEACHING[language][f] for f in findings]
        if not findings:
            lines.append(NORMAL[language])
        if fault:
            lines.append(FAULTS[language][fault])
        if prior:
            lines.append(PRIOR[language])
        notes[language] = "\n".join(lines)
    return notes
