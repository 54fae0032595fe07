"""A testcontainers `DockerContainer` definition as a stack file's service (`x-testcontainer`), for the
teams whose fixtures already define their services that way.

    service_of(DockerContainer("my-api:1.0").with_exposed_ports(8000), "stack.yaml:9: services.api")
    # {"image": "my-api:1.0", "ports": [8000]}

Only the definition is read: nothing is started and this module asks Docker nothing (testcontainers
itself asks the daemon for its API version when a DockerContainer is made). What maps becomes Compose's
keys, as a stack file writes them (`MAPPED`, and `HEALTHCHECKS` for the wait strategy); what the harness
cannot honour is refused in one line naming the attribute (`REFUSED`), never dropped: the harness makes
every node itself, on the run's own network, publishing its ports on 127.0.0.1 at ports of its own.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Collection

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import (ContainerStatusWaitStrategy, ExecWaitStrategy, HttpWaitStrategy,
                                                 LogMessageWaitStrategy, PortWaitStrategy, WaitStrategy)

from harness.errors import HarnessError
from stack.appsteps import load_attribute

# What a definition may set that no node of the harness can have: attribute, what sets it, why not.
REFUSED = (
    ("volumes", "volumes (with_volume_mapping)", "the harness mounts nothing into a node: put the files in the image"),
    ("tmpfs", "tmpfs (with_tmpfs_mount)", "the harness mounts nothing into a node"),
    ("_transferable_specs", "copies (with_copy_into_container)",
     "nothing is copied into a node: put the files in the image"),
    ("_network", "a network (with_network)", "a run's nodes share the network the harness makes for the run"),
    ("_network_aliases", "network aliases (with_network_aliases)", "a node is reached by its node name"),
    ("_name", "a container name (with_name)", "the harness names a node after its service"),
    ("_kwargs", "Docker options (keyword arguments, with_kwargs)",
     "the harness creates a node with its own options only"),
)


def definition(target: str, base_dir: str, where: str) -> DockerContainer:
    """`module:attribute`, the module looked up beside the stack file first: a DockerContainer, or a
    function of no arguments that returns one (so a definition can be made afresh for each use)."""
    from stack.transport import sdk_reachable_docker_host

    with sdk_reachable_docker_host():  # making a DockerContainer asks the daemon (over ssh: our socket)
        try:
            value = load_attribute(target, base_dir)
        except HarnessError as exc:
            raise HarnessError(f"{where}: {exc}") from None
        if callable(value) and not isinstance(value, DockerContainer):
            try:
                value = value()
            except Exception as exc:
                raise HarnessError(f"{where}: {target}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(value, DockerContainer):
        raise HarnessError(f"{where}: {target} is a {type(value).__name__}, not a testcontainers DockerContainer "
                           "or a function returning one")
    return value


def service_of(container: DockerContainer, where: str, replaced: Collection[str] = ()) -> dict[str, Any]:
    """The service a stack file would write for `container`, in Compose's keys. `where` starts every
    error (`file:line: services.NAME.x-testcontainer`). `replaced` are the keys the stack file writes
    itself: what the definition says there is neither read nor refused, since the file's word wins."""
    _refuse_unhonoured(container, where)
    service = {}
    for key, read in MAPPED.items():
        if key not in replaced:
            value = read(container, where)
            if value is not None:
                service[key] = value
    return service


def _refuse_unhonoured(container: DockerContainer, where: str) -> None:
    """Refuse what the harness would leave out when it makes the node: a subclass's own start-up work,
    and every `REFUSED` attribute the definition sets."""
    own = [name for name in ("start", "_configure")
           if getattr(type(container), name) is not getattr(DockerContainer, name)]
    if own:
        raise HarnessError(f"{where}: {type(container).__name__} does work of its own when it starts "
                           f"({', '.join(own)}), which the harness would not do: give a DockerContainer")
    for attribute, what, why in REFUSED:
        value = getattr(container, attribute)
        if value:
            shown = f" {', '.join(map(str, value))}" if isinstance(value, dict) or _strings(value) else ""
            raise HarnessError(f"{where}: {what}{shown} cannot be honoured: {why}")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _command(container: DockerContainer, where: str) -> str | list | None:
    command = container._command
    return list(command) if isinstance(command, (list, tuple)) else command


def _environment(container: DockerContainer, where: str) -> dict | None:
    return dict(container.env) or None


def _ports(container: DockerContainer, where: str) -> list | None:
    """The container ports; a fixed host port is refused rather than ignored, since whatever reaches the
    node at that host port would find nothing there."""
    ports = []
    for key, host in container.ports.items():
        port, _, protocol = str(key).partition("/")
        if protocol not in ("", "tcp"):
            raise HarnessError(f"{where}: port {key} cannot be honoured: the harness publishes TCP ports only")
        if host is not None:
            raise HarnessError(f"{where}: port {key} bound to host port {host} (with_bind_ports) cannot be honoured: "
                               "the harness publishes each port on 127.0.0.1 at a port of its own "
                               "(use with_exposed_ports)")
        ports.append(int(port) if port.isdigit() else port)
    return ports or None


def _healthcheck(container: DockerContainer, where: str) -> dict | None:
    """The wait strategy as a `healthcheck`, with its startup timeout as `x-deadline` and its poll interval
    as `interval` where the definition sets them (testcontainers' defaults leave the stack's own)."""
    strategy = container._wait_strategy
    if strategy is None or type(strategy) is ContainerStatusWaitStrategy:
        return None  # ready once it runs, as a service without a healthcheck is
    read = HEALTHCHECKS.get(type(strategy))
    if read is None:
        raise HarnessError(f"{where}: wait strategy {type(strategy).__name__} has no healthcheck form "
                           "(x-http, x-tcp, x-log, test): write the service's healthcheck in the stack file")
    check = read(strategy, where)
    if strategy._startup_timeout != testcontainers_config.timeout:
        check["x-deadline"] = strategy._startup_timeout
    if strategy._poll_interval != testcontainers_config.sleep_time:
        check["interval"] = strategy._poll_interval
    return check


def _as_default(strategy: WaitStrategy, where: str, defaults: tuple, why: str) -> None:
    """Refuse a strategy whose settings (attribute, default, the call that sets it) differ from the
    defaults its healthcheck form can carry."""
    for attribute, default, call in defaults:
        if getattr(strategy, attribute) != default:
            raise HarnessError(f"{where}: {type(strategy).__name__}.{call} cannot be honoured: {why}")


def _log(strategy: LogMessageWaitStrategy, where: str) -> dict:
    _as_default(strategy, where, (("_times", 1, "times"), ("_predicate_streams_and", False, "predicate_streams_and")),
                "x-log waits for one line of either stream to match")
    pattern = strategy._message
    if not isinstance(pattern.pattern, str) or pattern.flags & ~(re.MULTILINE | re.UNICODE):
        raise HarnessError(f"{where}: {type(strategy).__name__} pattern {pattern!r} cannot be honoured: "
                           "x-log takes the pattern's text alone (put flags in it: (?i)...)")
    return {"x-log": pattern.pattern}


HTTP_DEFAULTS = (("_method", "GET", "with_method"), ("_tls", False, "using_tls"), ("_headers", {}, "with_header"),
                 ("_basic_auth", None, "with_basic_credentials"), ("_body", None, "with_body"),
                 ("_response_predicate", None, "for_response_predicate"),
                 ("_status_code_predicate", None, "for_status_code_matching"))


def _http(strategy: HttpWaitStrategy, where: str) -> dict:
    why = "x-http is a plain GET, ready on any 2xx status"
    _as_default(strategy, where, HTTP_DEFAULTS, why)
    if any(not 200 <= code < 300 for code in strategy._status_codes):
        raise HarnessError(f"{where}: {type(strategy).__name__}.for_status_code"
                           f"({', '.join(map(str, sorted(strategy._status_codes)))}) cannot be honoured: {why}")
    return {"x-http": strategy._path, "x-port": strategy._port}


def _tcp(strategy: PortWaitStrategy, where: str) -> dict:
    return {"x-tcp": strategy._port}


def _exec(strategy: ExecWaitStrategy, where: str) -> dict:
    _as_default(strategy, where, (("_expected_exit_code", 0, "expected_exit_code"),),
                "a healthcheck test passes on exit 0")
    return {"test": ["CMD", *strategy._command]}


# The definition's parts a stack file has a key for, and the wait strategies a healthcheck form has.
MAPPED: dict[str, Callable[[DockerContainer, str], Any]] = {
    "image": lambda container, where: container.image,
    "command": _command,
    "environment": _environment,
    "ports": _ports,
    "healthcheck": _healthcheck,
}
HEALTHCHECKS: dict[type, Callable[[Any, str], dict]] = {
    LogMessageWaitStrategy: _log,
    HttpWaitStrategy: _http,
    PortWaitStrategy: _tcp,
    ExecWaitStrategy: _exec,
}
