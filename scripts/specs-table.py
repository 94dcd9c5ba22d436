#!/usr/bin/env python3
"""Write SPECS.md: for each corpus spec, how many operations it has, how many the generator
generated and left out (with why), how many warnings it printed, and whether the adopted crate
built clippy-clean (from scripts/adoption-test's log).

    scripts/specs-table.py GENERATE ADOPTION_LOG SPEC...

GENERATE is the generator's `generate` example binary (run with --summary on each spec).
"""
import json
import re
import subprocess
import sys

import yaml

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations_in(path):
    with open(path) as f:
        doc = yaml.safe_load(f)  # JSON is YAML
    paths = doc.get("paths") or {}
    count = 0
    for item in paths.values():
        if isinstance(item, dict):
            count += sum(1 for k in item if k in METHODS)
    return str(doc.get("openapi", "?")), count


def main():
    generate, log, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    built = {}
    with open(log) as f:
        for line in f:
            # `ok      adopt-together/api_box (corpus/box.json): ...` (all in one crate), or
            # `ok      adopt-3-box: ...` / `FAILED  adopt-3-box (corpus/box.json): ...` (one each).
            m = re.match(r"^ok\s+adopt-together/\S+ \(([^)]+)\):", line)
            if m:
                built[re.sub(r"\.(json|ya?ml)$", "", m.group(1).rsplit("/", 1)[-1])] = True
            m = re.match(r"^(ok|FAILED)\s+adopt-\d+-(\S+?)[: ]", line)
            if m:
                built[m.group(2)] = m.group(1) == "ok"
    rows, left_out_lines, totals = [], [], [0, 0, 0]
    for spec in specs:
        name = spec.rsplit("/", 1)[-1]
        stem = re.sub(r"\.(json|ya?ml)$", "", name)
        version, operations = operations_in(spec)
        run = subprocess.run([generate, "--summary", spec], capture_output=True, text=True)
        if run.returncode != 0:
            summary = {"generated": 0, "left_out": [], "warnings": 0}
            left_out_lines.append(f"- `{name}`: the generator stopped: {run.stderr.strip().splitlines()[-1]}")
        else:
            summary = json.loads(run.stdout)
        generated = summary["generated"]
        ok = built.get(stem)
        builds = "yes" if ok else ("no" if ok is False else "not built")
        rows.append(f"| `{name}` | {version} | {operations} | {generated} | {len(summary['left_out'])} "
                    f"| {summary['warnings']} | {builds} |")
        for entry in summary["left_out"]:
            entry = entry.replace("|", "\\|")
            left_out_lines.append(f"- `{name}`: {entry}")
        totals[0] += operations
        totals[1] += generated
        totals[2] += len(summary["left_out"])
    share = 100.0 * totals[1] / totals[0] if totals[0] else 0.0
    built_count = sum(1 for v in built.values() if v)
    with open("SPECS.md", "w") as out:
        out.write("# The spec corpus\n\n")
        out.write(
            "Real OpenAPI documents of OAuth-protected APIs, unmodified, in `corpus/` (sources, commits and\n"
            "licences in `corpus/SOURCES.md`). `scripts/check-specs` (run by `.ci/run`) adopts the SDK for\n"
            "each one as `scripts/adoption-test` does, in a new crate with `cargo clippy -D warnings` and a\n"
            "program calling every operation, and writes this file. Do not edit it by hand.\n\n"
        )
        out.write("| spec | OpenAPI | operations | generated | left out | warnings | builds clippy-clean |\n")
        out.write("| --- | --- | ---: | ---: | ---: | ---: | --- |\n")
        out.write("\n".join(rows) + "\n")
        out.write(
            f"| **all {len(specs)}** | | **{totals[0]}** | **{totals[1]}** ({share:.1f}%) | **{totals[2]}** | | "
            f"**{built_count} of {len(specs)}** |\n\n"
        )
        out.write(
            "`operations` counts the methods under `paths` as written; `generated` what the generated module\n"
            "has (a path item `$ref`'d from `components` adds its methods to the first). `warnings` counts\n"
            "every `cargo:warning` the generator printed: repairs, conversions from 3.1, and what was left\n"
            "out.\n\n"
        )
        out.write("## Left out, and why\n\n")
        out.write("\n".join(left_out_lines) + "\n" if left_out_lines else "Nothing.\n")
    print(f"SPECS.md: {totals[1]} of {totals[0]} operations generated ({share:.1f}%), "
          f"{built_count} of {len(specs)} specs build")


if __name__ == "__main__":
    main()
