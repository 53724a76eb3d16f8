"""Case library: anonymized DICOM cases with reference reads.

The blueprint lives in app.cases.routes: the sandbox that parses uploaded files imports this
package, and must not load the web framework.
"""
