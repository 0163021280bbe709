"""``net2fair import-net2net`` and ``net2fair view``: bringing a released model in, and
looking at models in the browser."""

from __future__ import annotations

import argparse
import signal
import sys

from net2fair.commands.common import CommandError


# ------------------------------------------------------------------------- import-net2net
def cmd_import_net2net(args: argparse.Namespace) -> int:
    """Import a released net2net model (run folder or .ckpt) as a model folder."""
    from net2fair.fileio import OutputError
    from net2fair.importers.net2net import Net2NetImportError, import_net2net
    from net2fair.training.engine import resolve_device

    stats: dict[str, str] = {}
    for spec in args.stats or []:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder or name in stats:
            raise CommandError(f"--stats expects NAME=DIR once per dataset, got '{spec}'", 2)
        stats[name] = folder
    try:
        result = import_net2net(
            args.source,
            args.out,
            domains=args.domains,
            stats_folders=stats,
            device=resolve_device(args.device) if stats else "cpu",
        )
    except (Net2NetImportError, OutputError) as e:
        raise CommandError(str(e), 2) from None
    a = result.architecture
    print(
        f"imported {result.checkpoint} ({a.resnet} encoder, BigGAN-{a.resolution} decoder "
        f"chn {a.chn}, z_dim {a.z_dim}, {a.n_flows} flow blocks) with datasets "
        f"{', '.join(result.domains)}; model written to {result.model_dir}"
    )
    for note in result.notes:
        print(f"  note: {note}")
    print("  weights: trained and released by the net2net authors (github.com/CompVis/net2net)")
    return 0


# ---------------------------------------------------------------------------------- view
def cmd_view(args: argparse.Namespace) -> int:
    """Run the Streamlit viewer as a child process until it or this command stops."""
    import subprocess

    from net2fair.viewer import PAGE as app

    if not app.is_file():
        raise CommandError(f"{app}: the viewer page is missing from the installed package")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--browser.gatherUsageStats",
        "false",
        # on a first run at a terminal Streamlit would stop to ask for an e-mail address and
        # write ~/.streamlit/credentials.toml: nothing is written outside an --out
        "--server.showEmailPrompt",
        "false",
        "--server.maxUploadSize",
        "20",
        "--client.toolbarMode",
        "minimal",
        "--",
        "--model",
        args.model,
    ]
    if args.models_dir:
        cmd += ["--models-dir", args.models_dir]
    if args.examples:
        cmd += ["--examples", args.examples]
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent)

    def stop(signum: int, frame: object) -> None:
        # the server is our child: stopping `net2fair view` stops it too, never orphaned
        proc.terminate()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _die_with_parent() -> None:
    """In the viewer's server process (Linux): get SIGTERM when `net2fair view` dies,
    even by SIGKILL, so no server is left listening."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        except (OSError, AttributeError):
            pass
