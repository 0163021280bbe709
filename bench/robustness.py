"""Robustness figures (issue 6): bad inputs through every command, resume, interrupted writes.

    python bench/robustness.py [--keep DIR]

Writes the bad-input corpus of tests/badinputs.py beside a few valid images, trains the
tiny config on it and runs ``project`` and ``report`` on it as a user would (subprocesses),
feeds every file to the viewer's upload check, kills a tiny training with SIGKILL and
resumes it, and simulates interrupted and failing writes. Prints markdown tables; about
two minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.badinputs: the corpus the tests use

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from net2fair import Translator, report, viewer  # noqa: E402
from net2fair.data.images import ImageError  # noqa: E402
from net2fair.training import checkpoint  # noqa: E402
from tests.badinputs import write_bad_inputs  # noqa: E402
from tests.conftest import write_toy_domain  # noqa: E402

TINY = str(REPO / "configs" / "tiny.yaml")
ENOSPC = "No space left on device"


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "net2fair", *args, "--device", "cpu", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"net2fair {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc


def skipped_files(stderr: str) -> set[str]:
    return {
        line[len("skipped ") :].split(": ", 1)[0]
        for line in stderr.splitlines()
        if line.startswith("skipped ")
    }


def crashed(proc: subprocess.CompletedProcess) -> bool:
    return "Traceback" in proc.stderr or proc.returncode not in (0, 1, 2)


def command_rows(root: Path, kinds: dict, usable: list[str], squares: Path) -> list[tuple]:
    """(command, processed, skipped, crashed, every bad file named) for each command."""
    folder = root / "messy"
    bad = [str(folder / r) for r in kinds["bad"]]
    rows = []
    run = root / "run"
    proc = cli("train", TINY, f"--domain=messy={folder}", f"--domain=squares={squares}",
               "--out", str(run))  # fmt: skip
    data = (
        json.loads((run / "model" / "metrics.json").read_text())["data"]
        if not proc.returncode
        else {}
    )
    processed = data.get("train", {}).get("messy", 0) + data.get("val", {}).get("messy", 0)
    named = skipped_files(proc.stderr)
    rows.append(("train", processed, len(set(bad) & named), crashed(proc), set(bad) <= named))

    out = root / "proj"
    proc = cli("project", str(run / "model"), str(folder), "--from", "messy", "--out", str(out))
    processed = len(list((out / "messy").rglob("*.png"))) if out.exists() else 0
    named = skipped_files(proc.stderr)
    rows.append(("project", processed, len(set(bad) & named), crashed(proc), set(bad) <= named))

    out = root / "rep"
    proc = cli("report", str(run / "model"), str(folder), "--from", "messy", "--out", str(out))
    processed = 0
    if (out / "per_image.csv").is_file():
        with open(out / "per_image.csv", newline="") as f:
            processed = len({r["file"] for r in csv.DictReader(f)})
    named = skipped_files(proc.stderr)
    # the report scans a folder named like an image rather than listing it as skipped
    files = {b for b in bad if not Path(b).is_dir()}
    rows.append(("report", processed, len(files & named), crashed(proc), files <= named))

    ok = skipped = crash = 0
    one_line = True
    for rel in kinds["bad"] + kinds["odd_valid"]:
        path = folder / rel
        if path.suffix.lower().lstrip(".") not in viewer.UPLOAD_TYPES or not path.is_file():
            continue
        try:
            viewer.read_upload(path.read_bytes(), path.name)
            ok += 1
        except ImageError as e:
            # the user's file name and a one-line reason, as the page shows it
            skipped += 1
            one_line &= e.path == Path(path.name) and "\n" not in e.reason
        except Exception:  # noqa: BLE001 - counting crashes is the point
            crash += 1
    rows.append(("viewer upload", ok, skipped, crash > 0, one_line))

    only_bad = root / "onlybad"
    k = write_bad_inputs(only_bad)
    for rel in k["odd_valid"]:
        (only_bad / rel).unlink()
    codes = []
    for cmd in ("project", "report"):
        proc = cli(cmd, str(run / "model"), str(only_bad), "--from", "messy", "--out",
                   str(root / f"{cmd}-none"))  # fmt: skip
        codes.append((cmd, proc.returncode, crashed(proc), proc.stderr.strip().splitlines()[-1]))
    proc = cli("train", TINY, f"--domain=bad={only_bad}", f"--domain=squares={squares}",
               "--out", str(root / "run-none"))  # fmt: skip
    codes.append(("train", proc.returncode, crashed(proc), proc.stderr.strip().splitlines()[-1]))
    return rows, codes


def resume_check(root: Path, discs: Path, squares: Path) -> tuple[bool, int]:
    """Kill -9 a tiny training after its first checkpoint, resume; same weights?"""
    args = [
        "train", TINY, f"--domain=discs={discs}", f"--domain=squares={squares}",
        "--ae-steps", "60", "train.autoencoder.ckpt_every=5", "train.autoencoder.val_every=1000",
    ]  # fmt: skip
    cli(*args, "--out", str(root / "full"), check=True)
    killed = root / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "net2fair", *args, "--out", str(killed), "--device", "cpu", "-q"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = killed / "autoencoder" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = checkpoint.load_checkpoint(ckpt)["step"] if ckpt.exists() else -1
    cli("train", "--resume", str(killed), check=True)
    a = load_file(str(root / "full" / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), step


def write_checks(root: Path, model: Path, images: Path) -> list[tuple[str, bool]]:
    results = []
    real_save = torch.save

    def half_then_full(obj: object, f: str | Path) -> None:
        real_save(obj, f)
        data = Path(f).read_bytes()
        Path(f).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, ENOSPC)

    # 1. checkpoint: full disk half-way through the write
    path = root / "ck" / "last.ckpt"
    checkpoint.save_checkpoint(path, {"w": torch.ones(8), "step": 1})
    checkpoint.torch.save = half_then_full
    try:
        checkpoint.save_checkpoint(path, {"w": torch.zeros(8), "step": 2})
        ok = False
    except checkpoint.CheckpointError as e:
        ok = ENOSPC in str(e) and "\n" not in str(e)
    finally:
        checkpoint.torch.save = real_save
    ok = ok and checkpoint.load_checkpoint(path)["step"] == 1
    results.append(("checkpoint, disk full mid-write: old one loads, no temp file", ok and
                    [p.name for p in path.parent.iterdir()] == ["last.ckpt"]))  # fmt: skip

    # 2. checkpoint: process killed mid-write (os._exit, no cleanup)
    path = root / "ck2" / "last.ckpt"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        import torch
        from net2fair.training import checkpoint
        path = Path({str(path)!r})
        checkpoint.save_checkpoint(path, {{"w": torch.ones(8), "step": 1}})
        real = torch.save
        def dies(obj, f):
            real(obj, f)
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])
            os._exit(9)
        checkpoint.torch.save = dies
        checkpoint.save_checkpoint(path, {{"w": torch.zeros(8), "step": 2}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    ok = proc.returncode == 9 and checkpoint.load_checkpoint(path)["step"] == 1
    results.append(("checkpoint, process killed mid-write: old one loads", ok))

    # 3. model folder: disk full while writing the weights
    import net2fair.models.translator as tr

    t = Translator.load(model)
    folder = t.save(root / "model-copy")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_file = tr.save_file

    def full_weights(tensors: dict, p: str, metadata: dict | None = None) -> None:
        Path(p).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, ENOSPC)

    tr.save_file = full_weights
    try:
        t.save(folder)
        ok = False
    except OSError:
        ok = True
    finally:
        tr.save_file = real_file
    ok = ok and {p.name: p.read_bytes() for p in folder.iterdir()} == before
    ok = ok and sorted(p.name for p in folder.parent.iterdir() if "model-copy" in p.name) == [
        "model-copy"
    ]
    results.append(("model folder, disk full: old folder intact, no leftovers", ok))

    # 4. report folder: disk full while writing per_image.csv
    rep = report.build(t, images, source=t.domains[0], max_images=4)
    out = report.write(rep, root / "rep-copy")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    import net2fair.report.html as h

    real_csv = h.write_csv

    def full_csv(r: object, p: Path) -> None:
        Path(p).write_text("file\n")
        raise OSError(errno.ENOSPC, ENOSPC)

    h.write_csv = full_csv
    try:
        report.write(rep, out)
        ok = False
    except OSError:
        ok = True
    finally:
        h.write_csv = real_csv
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".rep-copy")]
    results.append(("report folder, disk full: old report intact, no leftovers",
                    ok and after == before and not leftovers))  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="n2f-robust-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        kinds = write_bad_inputs(root / "messy")
        write_toy_domain(root / "messy", "disc", 6)
        squares = write_toy_domain(root / "squares", "square", 24)
        discs = write_toy_domain(root / "discs", "disc", 24)
        usable = kinds["odd_valid"] + [f"disc_{i:03d}.png" for i in range(6)]
        rows, codes = command_rows(root, kinds, usable, squares)
        same, killed_at = resume_check(root, discs, squares)
        writes = write_checks(root, root / "run" / "model", squares)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    n_kinds = len(kinds["bad"]) + len(kinds["odd_valid"]) + len(kinds["ignored"])
    print(
        f"## Bad-input corpus: {n_kinds} kinds: {len(kinds['bad'])} bad, "
        f"{len(kinds['odd_valid'])} odd-but-valid, {len(kinds['ignored'])} non-image entries"
    )
    print(f"bad: {', '.join(kinds['bad'])}")
    print(f"odd-but-valid: {', '.join(kinds['odd_valid'])}")
    print(f"non-image: {', '.join(kinds['ignored'])}")
    print(f"usable images in the mixed folder: {len(usable)}\n")
    print("| command | processed | bad skipped | crashed | every bad file named |")
    print("|---|---|---|---|---|")
    for cmd, processed, skipped, crash, named in rows:
        print(f"| {cmd} | {processed} | {skipped} | {int(crash)} | {'yes' if named else 'no'} |")
    print("\n| only bad files | exit code | crashed | message |")
    print("|---|---|---|---|")
    for cmd, code, crash, line in codes:
        print(f"| {cmd} | {code} | {int(crash)} | {line[:110]} |")
    print("\n| check | result |")
    print("|---|---|")
    print(f"| kill -9 after checkpoint at step {killed_at}, --resume: final weights equal an "
          f"uninterrupted run | {'yes' if same else 'NO'} |")  # fmt: skip
    for name, ok in writes:
        print(f"| {name} | {'pass' if ok else 'FAIL'} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
