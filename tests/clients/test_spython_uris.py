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


def test_execute_uri():
    assert Client.execute(BUSYBOX, ["cat", "/etc/image-name"]) == "busybox\n"
    # A second launch comes from the cache.
    result = Client.execute(BUSYBOX, ["cat", "/etc/image-name"], return_result=True)
    assert result["return_code"] == 0
    assert "busybox" in "".join(result["message"])


def test_run_uri():
    # The image's CMD is `sh`; arguments replace it, as with Apptainer.
    out = Client.run(TOOLS, args=["cat", "/opt/tools/VERSION"])
    if isinstance(out, list):
        out = "".join(out)
    assert "tools 1.0" in out


def test_inspect_uri():
    result = Client.inspect(TOOLS)
    assert "attributes" in result or "data" in result


def test_instance_uri():
    instance = Client.instance(BUSYBOX, name="sifr_uri")
    try:
        assert [i.name for i in Client.instances()] == ["sifr_uri"]
        assert Client.execute(instance, ["cat", "/etc/image-name"]) == "busybox\n"
    finally:
        instance.stop()
    assert Client.instances() == []
