"""Image URIs in action commands, through spython as a script would use them.

Not part of spython's suite: scripts/clients.sh copies this file next to it and sets
SIFR_CLIENTS_REGISTRY to the plain-HTTP test registry (reached with APPTAINER_NOHTTPS). Each
call hands a docker:// URI to exec, run, inspect or instance start, which fetch it into the
cache and run it as a local SIF (issue 20, item 1).
"""

import os

from spython.main import Client

REGISTRY = os.environ["SIFR_CLIENTS_REGISTRY"]
BUSYBOX = f"docker://{REGISTRY}/library/busybox:latest"
TOOLS = f"docker://{REGISTRY}/library/tools:1.0"
# spython returns a command's stderr after its stdout; `--quiet` keeps the INFO lines about
# fetching the image out of it (Apptainer prints them too, also for a cached image).
QUIET = ["--quiet"]


def test_execute_uri():
    # The first launch fetches and converts; the command's output comes first.
    out = Client.execute(BUSYBOX, ["cat", "/etc/image-name"])
    assert (out[0] if isinstance(out, list) else out) == "busybox\n"
    # Later ones run from the cache.
    assert (
        Client.execute(BUSYBOX, ["cat", "/etc/image-name"], singularity_options=QUIET)
        == "busybox\n"
    )
    result = Client.execute(BUSYBOX, ["false"], return_result=True, singularity_options=QUIET)
    assert result["return_code"] == 1


def test_run_uri():
    # The image's CMD is `sh`; arguments replace it, as with Apptainer.
    out = Client.run(TOOLS, args=["cat", "/opt/tools/VERSION"], singularity_options=QUIET)
    assert out == "tools 1.0"


def test_inspect_uri():
    result = Client.inspect(TOOLS, quiet=True)
    assert "attributes" in result or "data" in result


def test_instance_uri():
    instance = Client.instance(BUSYBOX, name="sifr_uri", quiet=True)
    try:
        assert [i.name for i in Client.instances()] == ["sifr_uri"]
        assert Client.execute(instance, ["cat", "/etc/image-name"]) == "busybox\n"
    finally:
        instance.stop()
    assert Client.instances() == []
