"""What a pickled model file would do when loaded, read without loading it: picklescan lists the
globals its opcodes import or call and rates each against its lists (``dangerous``: os.system,
subprocess, eval, builtins.exec and the like; ``suspicious``: anything outside its safe list, such as
a scikit-learn class; ``innocuous``: numpy arrays, builtins that build data).

picklescan is used rather than a scanner of our own: it is maintained against new ways of hiding a
call in a pickle, and is the scanner Hugging Face runs on uploaded models; it reads the opcodes
(pickletools) and never executes them.
"""

from __future__ import annotations

import io
from typing import Any

DANGEROUS, SUSPICIOUS, CLEAN, UNREADABLE = "dangerous", "suspicious", "clean", "unreadable"


def scanner_name() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"picklescan {version('picklescan')}"
    except PackageNotFoundError:
        return "picklescan"


def scan_pickle(data: bytes, name: str = "model.pkl") -> dict[str, Any]:
    """{scanner, status (dangerous | suspicious | clean | unreadable), findings: [{module, name, safety}],
    globals: how many the file names}."""
    from picklescan.scanner import SafetyLevel, scan_pickle_bytes

    result = scan_pickle_bytes(io.BytesIO(data), name)
    findings = [{"module": g.module, "name": g.name, "safety": g.safety.value} for g in result.globals
                if g.safety != SafetyLevel.Innocuous]
    findings.sort(key=lambda f: (f["safety"] != DANGEROUS, f["module"], f["name"]))
    if result.scan_err:
        status = UNREADABLE
    elif any(f["safety"] == DANGEROUS for f in findings):
        status = DANGEROUS
    elif findings:
        status = SUSPICIOUS
    else:
        status = CLEAN
    return {"scanner": scanner_name(), "status": status, "findings": findings, "globals": len(result.globals)}


def unsafe(scan: dict[str, Any]) -> bool:
    """Would loading it run something dangerous, or could the scanner not read it (either way: refused)?"""
    return scan["status"] in (DANGEROUS, UNREADABLE)


def describe(scan: dict[str, Any], limit: int = 4) -> str:
    """One line: what the scan found."""
    bad = [f"{f['module']}.{f['name']}" for f in scan["findings"] if f["safety"] == DANGEROUS]
    if scan["status"] == DANGEROUS:
        more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
        return f"calls {', '.join(bad[:limit])}{more} when loaded ({scan['scanner']}: dangerous)"
    if scan["status"] == UNREADABLE:
        return f"{scan['scanner']} could not read it as a pickle"
    if scan["status"] == SUSPICIOUS:
        return (f"imports {len(scan['findings'])} name(s) outside {scan['scanner']}'s safe list (such as "
                f"{scan['findings'][0]['module']}.{scan['findings'][0]['name']}); nothing known to be dangerous")
    return f"{scan['scanner']}: nothing outside its safe list"
