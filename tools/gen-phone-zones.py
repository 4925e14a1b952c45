#!/usr/bin/env python3
"""Generate src/campaign/phone_zones.rs from libphonenumber's time-zone data.

The data comes from the PyPI `phonenumbers` package (David Drysdale's Python port of
libphonenumber), module `phonenumbers.tzdata`: a mapping from an E.164 digit prefix to the
tuple of IANA zones numbers with that prefix are in.

Usage:
    tools/gen-phone-zones.py                      # uses the installed `phonenumbers` package
    tools/gen-phone-zones.py --wheel PATH.whl     # uses a wheel (`pip download --no-deps phonenumbers`)
    tools/gen-phone-zones.py --tz-dir DIR         # chrono-tz's `tz/` data dir, to validate zone names
    tools/gen-phone-zones.py --out FILE           # default: src/campaign/phone_zones.rs

Zone names are checked against the IANA data chrono-tz is built from (found with
`cargo metadata`, or given with --tz-dir); a name chrono-tz does not know is dropped with a
warning. `Etc/Unknown` (libphonenumber's "no zone") is always dropped. Prefixes left with no
zone are dropped too, so a lookup falls back to a shorter prefix.

The output is deterministic: running the script twice on the same data gives the same file.
"""

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "src", "campaign", "phone_zones.rs")
# Prefixes are stored as u32: 9 decimal digits always fit (max 999_999_999 < 2^32).
MAX_PREFIX_DIGITS = 9


def load_phonenumbers(wheel):
    """Imports `phonenumbers` (from the wheel when given) and returns (version, tz mapping)."""
    if wheel:
        if not os.path.isfile(wheel):
            sys.exit(f"error: wheel `{wheel}` does not exist: download it with "
                     "`pip download --no-deps phonenumbers`")
        # A pure-Python wheel is a zip archive that zipimport can load directly.
        sys.path.insert(0, os.path.abspath(wheel))
    try:
        import phonenumbers
        from phonenumbers.tzdata import TIMEZONE_DATA
    except ImportError:
        sys.exit("error: cannot import `phonenumbers`: run `pip install phonenumbers` "
                 "or pass --wheel PATH.whl")
    if wheel and not os.path.abspath(phonenumbers.__file__).startswith(os.path.abspath(wheel)):
        sys.exit(f"error: `phonenumbers` was imported from {phonenumbers.__file__}, "
                 f"not from the wheel `{wheel}`")
    return phonenumbers.__version__, TIMEZONE_DATA


def find_tz_dir():
    """Finds chrono-tz's bundled IANA data through `cargo metadata`; None when not found."""
    try:
        host = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
        host = next(line.split(":", 1)[1].strip() for line in host.splitlines()
                    if line.startswith("host:"))
        # --filter-platform keeps cargo from fetching other platforms' crates offline.
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--offline", "--filter-platform", host],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, StopIteration, subprocess.CalledProcessError):
        return None
    for package in json.loads(out)["packages"]:
        if package["name"] == "chrono-tz":
            tz_dir = os.path.join(os.path.dirname(package["manifest_path"]), "tz")
            if os.path.isdir(tz_dir):
                return tz_dir
    return None


def chrono_tz_names(tz_dir):
    """The zone and link names defined in the IANA source files chrono-tz compiles."""
    files = ["africa", "antarctica", "asia", "australasia", "backward", "etcetera",
             "europe", "northamerica", "southamerica"]
    names = set()
    for name in files:
        path = os.path.join(tz_dir, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[0] == "Zone":
                    names.add(fields[1])
                elif len(fields) >= 3 and fields[0] == "Link":
                    names.add(fields[2])
    return names


def build(data, known_zones):
    """Returns (rows, zone_lists): rows are (prefix, list index), sorted by prefix."""
    dropped = {}
    cleaned = {}
    for prefix, zones in data.items():
        if not prefix.isdigit() or prefix.startswith("0"):
            sys.exit(f"error: unexpected prefix `{prefix}` in the time-zone data")
        if len(prefix) > MAX_PREFIX_DIGITS:
            sys.exit(f"error: prefix `{prefix}` is longer than {MAX_PREFIX_DIGITS} digits: "
                     "widen the prefix type in this script and in src/campaign/phone.rs")
        keep = []
        for zone in zones:
            if zone == "Etc/Unknown":
                continue
            if known_zones is not None and zone not in known_zones:
                dropped.setdefault(zone, []).append(prefix)
                continue
            if zone not in keep:
                keep.append(zone)
        if keep:
            cleaned[prefix] = tuple(sorted(keep))
    for zone, prefixes in sorted(dropped.items()):
        print(f"warning: dropped zone `{zone}` (unknown to chrono-tz) from "
              f"{len(prefixes)} prefix(es), e.g. {sorted(prefixes)[0]}", file=sys.stderr)
    zone_lists = sorted(set(cleaned.values()))
    index = {zones: i for i, zones in enumerate(zone_lists)}
    rows = sorted((int(prefix), index[zones]) for prefix, zones in cleaned.items())
    return rows, zone_lists


def render(version, rows, zone_lists):
    out = []
    out.append("//! Time zones by E.164 prefix, from libphonenumber's time-zone data.")
    out.append("//!")
    out.append(f"//! generated by tools/gen-phone-zones.py from phonenumbers {version}; do not edit.")
    out.append("//! Apache-2.0, Copyright The Libphonenumber Authors: see THIRD_PARTY_NOTICES.md.")
    out.append("")
    out.append(f'/// The `phonenumbers` (Python) release the table was generated from.')
    out.append(f'pub const SOURCE_VERSION: &str = "{version}";')
    out.append("")
    longest = max(len(str(prefix)) for prefix, _ in rows)
    out.append("/// The most digits a prefix in [`PREFIXES`] has.")
    out.append(f"pub const MAX_PREFIX_DIGITS: usize = {longest};")
    out.append("")
    out.append("/// The distinct zone lists; [`PREFIXES`] points into this table.")
    out.append("#[rustfmt::skip]")
    out.append(f"pub static ZONE_LISTS: [&[&str]; {len(zone_lists)}] = [")
    for i, zones in enumerate(zone_lists):
        names = ", ".join(f'"{z}"' for z in zones)
        out.append(f"    /* {i} */ &[{names}],")
    out.append("];")
    out.append("")
    out.append("/// `(prefix, index into ZONE_LISTS)`, sorted by prefix. A prefix is the leading digits of")
    out.append("/// an E.164 number (country code first) read as a decimal number; prefixes never start")
    out.append("/// with 0, so the value determines the digit string.")
    out.append("#[rustfmt::skip]")
    out.append(f"pub static PREFIXES: [(u32, u16); {len(rows)}] = [")
    line = "   "
    for prefix, idx in rows:
        item = f" ({prefix}, {idx}),"
        if len(line) + len(item) > 100:
            out.append(line)
            line = "   "
        line += item
    if line.strip():
        out.append(line)
    out.append("];")
    out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="a phonenumbers wheel to read instead of the installed package")
    parser.add_argument("--tz-dir", help="chrono-tz's tz/ directory (default: found with cargo metadata)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output file (default: %(default)s)")
    args = parser.parse_args()

    version, data = load_phonenumbers(args.wheel)
    tz_dir = args.tz_dir or find_tz_dir()
    if tz_dir:
        print(f"checking zone names against {tz_dir}", file=sys.stderr)
        known = chrono_tz_names(tz_dir)
        if not known:
            sys.exit(f"error: no zone names found in `{tz_dir}`: pass chrono-tz's tz/ directory")
    else:
        known = None
        print("warning: chrono-tz's tz data not found (pass --tz-dir); zone names not checked "
              "here, the unit test in src/campaign/phone.rs still checks them", file=sys.stderr)

    rows, zone_lists = build(data, known)
    if len(zone_lists) > 0xFFFF:
        sys.exit("error: more than 65535 distinct zone lists: widen the index type")
    text = render(version, rows, zone_lists)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(rows)} prefixes, {len(zone_lists)} zone lists, "
          f"phonenumbers {version}", file=sys.stderr)


if __name__ == "__main__":
    main()
