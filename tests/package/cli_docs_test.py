#!/usr/bin/env python3
"""Every flag docs/cli.md names exists in the binary's help, so the two
cannot drift apart: a flag in a verb's section must be in that verb's
`--help` (which lists the global options too); a flag in the general
sections must be in `sluice --help` or some verb's. Also: every verb the
binary has is documented with a section.

    cli_docs_test.py SLUICE_BINARY docs/cli.md
"""
import re
import subprocess
import sys

binary, doc = sys.argv[1], sys.argv[2]


def help_text(*args):
    r = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"FAIL: `sluice {' '.join(args)} --help` exited {r.returncode}: {r.stderr}")
    return r.stdout


def flags_in(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


top = help_text()
# The verbs, from the "Subcommands:" list of the top-level help.
verbs = []
in_subs = False
for line in top.splitlines():
    if line.startswith("Subcommands:"):
        in_subs = True
        continue
    if in_subs:
        m = re.match(r"^  (\S+)", line)
        if m:
            verbs.append(m.group(1))
        elif line.strip() == "":
            break
if len(verbs) < 10:
    sys.exit(f"FAIL: could not read the verbs from `sluice --help`:\n{top}")
verb_help = {v: help_text(v) for v in verbs}
everything = flags_in(top).union(*(flags_in(h) for h in verb_help.values()))

sections = re.split(r"^## ", open(doc, encoding="utf-8").read(), flags=re.M)
errors = []
documented = set()
for sec in sections[1:]:
    title, _, body = sec.partition("\n")
    names = [n.strip() for n in title.split(",")]
    sec_verbs = [n for n in names if n in verbs]
    documented.update(sec_verbs)
    allowed = set().union(*(flags_in(verb_help[v]) for v in sec_verbs)) if sec_verbs else everything
    allowed |= flags_in(top)
    for flag in sorted(flags_in(body)):
        if flag in allowed:
            continue
        # A flag of another verb that the section names in code
        # (`sluice backfill` ... `--heartbeat-ms`).
        if any(re.search(rf"`(sluice )?{re.escape(v)}[` ]", body) and flag in flags_in(verb_help[v]) for v in verbs):
            continue
        errors.append(f"docs/cli.md, section '{title}': {flag} is not in "
                      f"`sluice {' / '.join(sec_verbs) or ''} --help`")
for v in verbs:
    if v not in documented:
        errors.append(f"verb {v} has no section (## {v}) in docs/cli.md")
if errors:
    print("\n".join("FAIL: " + e for e in errors))
    sys.exit(1)
print(f"PASS: {len(verbs)} verbs, every flag docs/cli.md names is in the help")
