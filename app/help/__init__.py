"""Help pages: a short guide per role and a glossary of the measures the portal reports."""
