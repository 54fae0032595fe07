"""A `Stack`: one run's containers on one private network, up and down as a context manager.

    with Stack("small") as stack:
        print(stack.endpoints())

`up()` reaps dead runs, builds missing images, starts the nodes in dependency waves, waits on real
health (with deadlines) and wires the proxy; any failure tears the run down again and raises one
`HarnessError` naming the node, with the tail of its log.
"""

from __future__ import annotations

import io
import secrets
import socket
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from harness.errors import HarnessError
from harness.progress import Ticker, say
from stack import cleanup, health, reaper, stopping
from stack.appsteps import run_steps
from stack.docker_api import docker_client, read_file
from stack.images import building, ensure_images, ensure_own_images
from stack.kinds import kind_of
from stack.stopping import Stopped
from stack.topology import NodeSpec, RunParams, Topology, build_topology, stack_file_of

Progress = Callable[[str], None]
DEFAULT_GRACE_S = 10.0  # as `docker stop`
WAITING_EVERY_S = 3.0    # how often a wait on readiness says what it still waits for


def new_run_id() -> str:
    return "r" + secrets.token_hex(4)


class Stack:
    def __init__(self, topology: str = "default", *, seed: int = 0, with_services: bool = True,
                 detached: bool = False, progress: Progress = say,
                 boot_timeout: float = 180.0, host_port_base: int | None = None,
                 run_id: str | None = None, client=None) -> None:
        self.run_id = run_id or new_run_id()
        self.seed = seed
        self.detached = detached
        self.progress = progress
        self.boot_timeout = boot_timeout
        self.host_port_base = host_port_base
        self._client = client
        self._transport = None  # how this process reaches the Docker host's ports (stack/transport.py)
        self.params = RunParams(run_id=self.run_id, cookie=secrets.token_hex(20), with_services=with_services)
        self.stack_file = stack_file_of(topology)
        self.topology: Topology = build_topology(self.stack_file, self.params)
        self.images: dict[str, str] = {}
        self.network = None
        self._subnet = None  # the network's subnet (ipaddress.IPv4Network), read once
        self.containers: dict[str, object] = {}
        self._passwd: dict[str, dict[str, tuple[int, int]]] = {}
        # When the stack was last found healthy by `up` or a reset (the host's time.time()), and not
        # disturbed since as far as this process knows: a fault, a deploy or a stop calls
        # `note_disturbed`. None: unknown, so the next reset checks everything (stack/reset.py).
        self.quiet_since: float | None = None
        self.last_disturbances: list[str] = []  # why the last reset took its full path (empty: it did not)

    def note_disturbed(self) -> None:
        """Something (a fault, a deploy, a stop) changed the stack: the next reset does all its checks."""
        self.quiet_since = None

    @classmethod
    def attach(cls, client, run_id: str, labels: dict[str, str]) -> "Stack":
        """A handle on a run that is already up (e.g. one `chaos-harness up` left running)."""
        topology = labels.get(cleanup.LABEL_STACK_FILE) or labels.get(cleanup.LABEL_TOPOLOGY, "default")
        return cls(topology, run_id=run_id, client=client,
                   with_services=labels.get(cleanup.LABEL_SERVICES) == "1",
                   detached=labels.get(cleanup.LABEL_DETACHED) == "1")

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "Stack":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def transport(self):
        if self._transport is None:
            from stack.transport import for_docker_host

            self._transport = for_docker_host()
        return self._transport

    def reach(self, address: str, port: int) -> tuple[str, int]:
        """Where this process connects to reach `address:port` as the Docker host sees it (a node's
        address on the run network, or the host's 127.0.0.1): itself on a local daemon, a local ssh
        forward on a remote one."""
        return self.transport.reach(address, port)

    # ------------------------------------------------------------------ names
    @property
    def network_name(self) -> str:
        return f"chaos-{self.run_id}"

    def container_name(self, node: str) -> str:
        return f"chaos-{self.run_id}-{node}"

    def labels(self, **extra: str) -> dict[str, str]:
        labels = cleanup.owner_labels(self.detached)
        labels[cleanup.LABEL_RUN] = self.run_id
        labels[cleanup.LABEL_TOPOLOGY] = self.topology.name
        labels[cleanup.LABEL_STACK_FILE] = self.stack_file
        labels[cleanup.LABEL_SERVICES] = "1" if self.params.with_services else "0"
        labels.update(extra)
        return labels

    # ------------------------------------------------------------------ up / down
    def up(self) -> "Stack":
        started = time.monotonic()
        client = self.client
        self._check_ports_free()
        cleanup.reap_dead_runs(client, self.progress)
        if not self.detached:
            reaper.watch_this_process()  # removes this run within seconds if this process is killed
        with building(self.progress):
            self.images = ensure_images(client, self.progress)
            self._check_own_images()
            ensure_own_images(client, self.topology.nodes, self.images["base"], self.progress)
        try:
            self.network = self._create_network()
            services = [n for n in self.topology.nodes if kind_of(n.role).service]
            infra = [n for n in self.topology.nodes if n not in services]
            self._start_waves(infra)
            self.wait_healthy(infra)
            health.configure_proxy(self)
            if self.topology.app is not None:
                run_steps(self, self.topology.app.setup, self.topology.app.base_dir, self.progress)
            if services:
                self._start_waves(services)
                self.wait_healthy(services)
        except BaseException:
            self.down(quiet=True)
            raise
        self.progress(f"[stack] {self.topology.name} topology up in {time.monotonic() - started:.1f}s "
                      f"(run {self.run_id})")
        self.quiet_since = time.time()
        return self

    def down(self, quiet: bool = False) -> None:
        runs = cleanup.list_runs(self.client)
        run = runs.get(self.run_id)
        if run is not None:
            cleanup.remove_run(self.client, run, None if quiet else self.progress)
        self.containers.clear()
        self.network = None

    # ------------------------------------------------------------------ the network and node addresses
    def _create_network(self):
        """A bridge network whose subnet is written into its config, so that every node can keep one address
        across restarts (`node_ip`); Docker hands a restarted container whatever address is free, and pins
        one only on a network with a configured subnet. The subnet is the one Docker would pick itself:
        asked for with a first network, which is removed at once."""
        import docker.errors
        from docker.types import IPAMConfig, IPAMPool

        labels = self.labels(**{cleanup.LABEL_KIND: "network"})
        last = ""
        for _ in range(5):
            probe = self.client.networks.create(self.network_name, driver="bridge", check_duplicate=True,
                                                labels=labels)
            probe.reload()
            pool = (probe.attrs.get("IPAM", {}).get("Config") or [{}])[0]
            probe.remove()
            if not pool.get("Subnet"):
                raise HarnessError(f"Docker gave network {self.network_name} no IPv4 subnet: {probe.attrs.get('IPAM')}")
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=pool["Subnet"], gateway=pool.get("Gateway"))])
            try:
                return self.client.networks.create(self.network_name, driver="bridge", check_duplicate=True,
                                                   labels=labels, ipam=ipam)
            except docker.errors.APIError as exc:  # another process took the subnet in between: ask again
                last = exc.explanation or str(exc)
                if "overlap" not in last and "in use" not in last:
                    raise
        raise HarnessError(f"could not create network {self.network_name}: {last}")

    def node_ip(self, node: str) -> str:
        """The node's address on the run's network, the same across restarts and redeploys: the subnet's
        16th address on, in the order of the topology's nodes."""
        import ipaddress

        if self._subnet is None:
            pool = (self._network().attrs.get("IPAM", {}).get("Config") or [{}])[0]
            self._subnet = ipaddress.ip_network(pool.get("Subnet") or "0.0.0.0/32")
        names = [n.name for n in self.topology.nodes]
        if node not in names:
            raise HarnessError(f"no node {node!r} in the {self.topology.name} stack")
        address = self._subnet.network_address + 16 + names.index(node)
        if address >= self._subnet.broadcast_address:
            raise HarnessError(f"network {self.network_name} ({self._subnet}) has no room for {len(names)} nodes")
        return str(address)

    def _network(self):
        """The run's network (looked up when this handle did not create it: an attached stack)."""
        return self.network or self.client.networks.get(self.network_name)

    def connect(self, node: str, container=None) -> None:
        """Attach the node's container to the run's network at its own address, under its short name, so
        that every node resolves every other node (and itself) by that name."""
        self._network().connect(container or self.container(node), aliases=[node], ipv4_address=self.node_ip(node))

    # ------------------------------------------------------------------ starting nodes
    def _check_ports_free(self) -> None:
        if self.host_port_base is None or self.transport.remote:  # a remote host's ports are its own
            return
        for port in self.host_ports():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    raise HarnessError(f"port 127.0.0.1:{port} is already in use: choose another "
                                       f"--port-base than {self.host_port_base}") from None

    def _check_own_images(self) -> None:
        """An image a stack file names (not one the harness builds) must be here: nothing is pulled."""
        from stack.images import image_exists

        for node in self.topology.nodes:
            if node.build is None and node.image not in self.images and not image_exists(self.client, node.image):
                raise HarnessError(f"{node.name}: image {node.image!r} is not present locally and no registry "
                                   "is reachable to pull it (build or `docker load` it first)")

    def host_ports(self) -> list[int]:
        count = sum(len(n.publish) for n in self.topology.nodes)
        return [self.host_port_base + i for i in range(count)] if self.host_port_base else []

    def _port_bindings(self) -> dict[tuple[str, int], int | None]:
        bindings: dict[tuple[str, int], int | None] = {}
        ports = iter(self.host_ports())
        for node in self.topology.nodes:
            for port in node.publish:
                bindings[(node.name, port)] = next(ports, None)
        return bindings

    def _start_waves(self, nodes: list[NodeSpec]) -> None:
        pending = list(nodes)
        bindings = self._port_bindings()
        deadline = time.monotonic() + self.boot_timeout
        ready: set[str] = set()
        while pending:
            for name in {d for n in pending for d in n.ready_before} - ready:
                if name in self.containers and health.node_ready(self, name):
                    ready.add(name)
            wave = [n for n in pending if all(d in self.containers for d in n.start_after)
                    and all(d in ready for d in n.ready_before)]
            if not wave:
                waiting = sorted({d for n in pending for d in n.ready_before} - ready)
                if not waiting or not set(waiting) <= set(self.containers):
                    raise HarnessError(f"nodes wait on each other: {', '.join(n.name for n in pending)}")
                if time.monotonic() > deadline:
                    raise HarnessError(f"{waiting[0]}: not ready after {self.boot_timeout:.0f}s, "
                                       "so the nodes that join it cannot start", detail=self.logs_tail(waiting[0]))
                time.sleep(0.5)
                continue
            with ThreadPoolExecutor(max_workers=4) as pool:
                for node, container in zip(wave, pool.map(lambda n: self._create(n, bindings), wave)):
                    self.containers[node.name] = container
            pending = [n for n in pending if n not in wave]

    def _create(self, node: NodeSpec, bindings, overridden: list[str] | None = None) -> object:
        """Create and start the node's container; `overridden` names the variables a deploy set apart
        from the stack file's spec (a label, so a reset knows to redeploy it whatever their names)."""
        import docker.errors

        ports = {f"{p}/tcp": ("127.0.0.1", bindings.get((node.name, p))) for p in node.publish}
        files, env = node.files, dict(node.env)
        if node.clock:  # opted in to clock faults: the clock library and its offset file (stack.clock)
            from stack import clock
            from stack.images import plan_images

            # a stack attached to a running run has no image table: the clock image's name is its hash
            files += clock.node_files(self.client, self.images.get("clock") or plan_images().names["clock"])
            env.update(clock.node_env())
        kwargs = dict(
            name=self.container_name(node.name), hostname=node.name, detach=True,
            labels=self.labels(**{cleanup.LABEL_NODE: node.name, cleanup.LABEL_ROLE: node.role,
                                  cleanup.LABEL_KIND: "node"},
                               **({cleanup.LABEL_OVERRIDES: ",".join(overridden)} if overridden else {})),
            environment=env, ports=ports, network=self.network_name,
            mem_limit=node.mem_limit, cap_add=list(node.cap_add) or None,
        )
        pinned = kind_of(node.role).hosts(self.topology, node)
        if pinned:  # these names come from /etc/hosts, never from Docker's DNS (Kind.pinned_peers)
            kwargs["extra_hosts"] = {name: self.node_ip(name) for name in pinned}
        if node.command:
            kwargs["command"] = list(node.command)
        if node.user:
            kwargs["user"] = node.user
        try:
            container = self.client.containers.create(self.images.get(node.image, node.image), **kwargs)
            self._network().disconnect(container)
            self.connect(node.name, container)  # its short name, at an address of its own that a restart keeps
            if files:
                container.put_archive("/", self._archive(node.image, files, container))
            container.start()
        except docker.errors.APIError as exc:
            message = exc.explanation or str(exc)
            if "port is already allocated" in message or "address already in use" in message:
                raise HarnessError(f"{node.name}: a host port is already in use ({message})") from None
            raise HarnessError(f"{node.name}: could not start container: {message}") from None
        container.reload()
        self.progress(f"[stack] started {node.name}")
        return container

    def _archive(self, image_key: str, files, container) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            dirs: set[str] = set()
            for cf in files:
                uid, gid = self._owner(image_key, container, cf.owner)
                parts = cf.path.strip("/").split("/")
                for i in range(1, len(parts)):
                    d = "/".join(parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        info = tarfile.TarInfo(d)
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        info.uid, info.gid = uid, gid
                        tar.addfile(info)
                data = cf.content if isinstance(cf.content, bytes) else cf.content.encode()
                info = tarfile.TarInfo(cf.path.strip("/"))
                info.size, info.mode, info.uid, info.gid = len(data), cf.mode, uid, gid
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def _owner(self, image_key: str, container, user: str) -> tuple[int, int]:
        if user == "root":
            return 0, 0
        if image_key not in self._passwd:
            text = read_file(container, "/etc/passwd").decode()
            self._passwd[image_key] = {
                f[0]: (int(f[2]), int(f[3])) for f in (line.split(":") for line in text.splitlines()) if len(f) > 3}
        try:
            return self._passwd[image_key][user]
        except KeyError:
            raise HarnessError(f"image {self.images.get(image_key, image_key)} has no user {user!r}") from None

    def wait_healthy(self, nodes: list[NodeSpec] | None = None, exited_ok: bool = False,
                     settled: bool = False) -> dict[str, str]:
        """Wait on the health checks of `nodes` (default: all), each bounded by boot_timeout; `settled`:
        their kinds' cheaper checks for nodes nothing disturbed since they were last ready.

        A node whose container exits fails the wait at once, unless `exited_ok`: then the wait goes on
        for the others and the exited nodes are returned, each with its exit code and log tail."""
        nodes = list(self.topology.nodes) if nodes is None else nodes
        deadline = time.monotonic() + self.boot_timeout
        checks = health.checks_for(self, nodes, settled)
        exited: dict[str, str] = {}

        def waiting(elapsed: float) -> str:
            pending = [check.what for check, future in futures if not future.done()]
            return f"[stack] waiting +{elapsed:.0f}s on {len(pending)}: {'; '.join(pending)}"

        # A RabbitMQ node takes 10-20 s to boot: say what is still awaited rather than nothing.
        with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
            futures = [(check, pool.submit(check.wait, self, deadline)) for check in checks]
            with Ticker(waiting, self.progress, interval_s=WAITING_EVERY_S):
                for check, future in futures:
                    try:
                        future.result()
                    except HarnessError:
                        gone = [n for n in (check.nodes or (check.node,)) if self._exited(n)]
                        if not exited_ok or not gone:
                            raise
                        for name in gone:
                            exited[name] = self._exit_detail(name)
        return exited

    def _exited(self, node: str) -> bool:
        container = self.container(node)
        container.reload()
        return container.status in ("exited", "dead")

    def _exit_detail(self, node: str) -> str:
        container = self.container(node)
        code = container.attrs.get("State", {}).get("ExitCode")
        tail = self.logs_tail(node).strip().splitlines()[-1:] or [""]
        return f"exit code {code}; last log line: {tail[0][:200]}"

    # ------------------------------------------------------------------ redeploys
    def redeploy(self, node: str, env: dict[str, str] | None = None, wait: bool = True,
                 grace: float = DEFAULT_GRACE_S) -> Stopped:
        """Replace a node's container with one built from its spec plus `env` (None: the spec as is).

        This is a deploy as orchestrators do it: the old container gets SIGTERM and `grace` seconds to
        exit before SIGKILL (`grace=0`: a crash), then a new one starts with the same name, address and
        published ports. Returns how the old container ended; `wait` waits on the node's health check.
        """
        import dataclasses

        self.note_disturbed()
        base = self.topology.node(node)
        spec = dataclasses.replace(base, env={**base.env, **(env or {})})
        old = self.container(node)
        old.reload()
        ports = {}
        for port in spec.publish:
            binding = (old.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
            ports[(node, port)] = int(binding[0]["HostPort"]) if binding else None
        stopped = self.stop_node(node, grace)
        old.remove(force=True)
        self.containers.pop(node, None)
        overridden = sorted(k for k, v in (env or {}).items() if base.env.get(k) != v)
        self.containers[node] = self._create(spec, ports, overridden)
        if wait:
            self.wait_healthy([spec])
        return stopped

    def stop_node(self, node: str, grace: float = DEFAULT_GRACE_S) -> Stopped:
        """SIGTERM the node's container, SIGKILL it after `grace` s; how it ended (see `stack.stopping`)."""
        self.note_disturbed()
        stopped = stopping.stop(self.container(node), grace)
        how = "killed after its grace" if stopped.killed else f"exited {stopped.exit_code}"
        self.progress(f"[stack] stopped {node}: {how} in {stopped.seconds:.1f}s")
        return stopped

    # ------------------------------------------------------------------ helpers for others
    def container(self, node: str):
        if node not in self.containers:
            self.containers[node] = self.client.containers.get(self.container_name(node))
        return self.containers[node]

    def exec(self, node: str, cmd: list[str], user: str | None = None, timeout: float = 20.0) -> tuple[int, str]:
        """Run a command in a node, bounded by `timeout` (coreutils' timeout inside the container)."""
        full = ["timeout", "-k", "2", str(int(timeout)), *cmd]
        kwargs = {"user": user} if user else {}
        result = self.container(node).exec_run(full, **kwargs)
        return result.exit_code, result.output.decode(errors="replace")

    def logs_tail(self, node: str, lines: int = 40) -> str:
        try:
            return self.container(node).logs(tail=lines).decode(errors="replace")
        except Exception as exc:  # the log is only context for an error we are already raising
            return f"(no log: {exc})"

    def published_port(self, node: str, port: int) -> int:
        """The port on the Docker host's 127.0.0.1 that the node's `port` is published at."""
        container = self.container(node)
        container.reload()
        binding = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
        if not binding:
            raise HarnessError(f"{node}: port {port} is not published")
        return int(binding[0]["HostPort"])

    def host_port(self, node: str, port: int) -> int:
        """The port on this machine's 127.0.0.1 that reaches the node's `port`: the published port itself
        on a local Docker host, a tunnel's local end on a remote one."""
        return self.reach("127.0.0.1", self.published_port(node, port))[1]

    def amqp_url(self) -> str:
        """The first RabbitMQ node, as the harness on the host reaches it (not through the proxy)."""
        rabbit = self.topology.names("rabbitmq")[0]
        return f"amqp://guest:guest@127.0.0.1:{self.host_port(rabbit, 5672)}/%2F"

    def endpoints(self, on_docker_host: bool = False) -> dict[str, str]:
        """Each published port as this process reaches it, or (`on_docker_host`) as it is on the Docker
        host's own 127.0.0.1, which is what outlives this process when the host is remote."""
        port_of = self.published_port if on_docker_host else self.host_port
        out: dict[str, str] = {}
        for node in self.topology.nodes:
            for port in node.publish:
                scheme = {5672: "amqp", 8474: "http", 8080: "http"}.get(port, "tcp")
                out[f"{node.name}:{port}"] = f"{scheme}://127.0.0.1:{port_of(node.name, port)}"
        return out

