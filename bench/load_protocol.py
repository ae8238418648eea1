"""How many visitors one server holds: N simulated visitors speaking Streamlit's own websocket protocol,
no browser; the same driver against a one-line Streamlit app in the same run as the baseline.

Each visitor opens a websocket session on ``/_stcore/stream`` (subprotocol "streamlit", as the browser),
sends the protobuf ``BackMsg`` messages the browser sends (a rerun with the page's script hash and the
widget states it holds) and reads the ``ForwardMsg`` messages back. It opens the app, then walks a tour
(``TOUR``): each page, and on it its main control (the manifold's grid, a latent slider, a test-image
pick on Reconstruct, the Embeddings colouring, the model picker to a CVAE and a CVAE class), with a
think time between actions (``--think``, 5 s by default, drawn from 0.5x to 1.5x of it; the visitors'
starts are spread over one think time). A widget's state is built from the element the server sent,
with Streamlit's own test helper ``streamlit.testing.v1.element_tree.parse_tree_from_messages`` to
find the widget by its key, and serialized as the frontend (and ``AppTest``) does (``widget_state``);
like a browser, a visitor sends again every widget state it has set.

Per action it measures the server's time, from the message sent to the ``script_finished`` message
of the run it started (a run that ends early for another rerun, ``st.switch_page`` or ``st.rerun``,
is followed to the run that finishes), and reports p50 / p95 / max per N, the errors (an exception
element in the page, a run that does not finish within ``--timeout``, a dropped connection), the
server's CPU (its process's user + system time over the wall time, in cores, and as a share of the
machine) and its peak resident memory (``VmHWM``). Before the counted runs one visitor walks the tour
once without think times (the warm-up, printed apart): the counted runs measure a warm server;
``--cold`` measures the first page on a server that has just started. Both servers are started here, on loopback ports,
headless, without usage statistics. Linux only (``/proc``).

    .venv/bin/python bench/load_protocol.py                       # N = 1, 8, 16, 32, 64; then the baseline
    .venv/bin/python bench/load_protocol.py --n 2 --think 0.2     # a smoke run (tests/test_load_protocol.py)
    .venv/bin/python bench/load_protocol.py --cold 16             # 16 visitors on a server that just started

Run it alone on the machine (the visitors share the CPU with the server: each is a coroutine of this
one process, a few milliseconds of protobuf work per action).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1.element_tree import Widget, parse_tree_from_messages

ROOT = Path(__file__).resolve().parents[1]
BASELINE_APP = 'import streamlit as st\n\nst.write("Hello")\n'
FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}


@dataclass(frozen=True)
class Step:
    """One action: go to ``page`` (a pages/ file's stem; None: the app's first page) and, when ``key`` is
    set, set that widget to ``value`` (a callable of the visitor's number gives each its own value)."""

    name: str
    page: str | None = None
    key: str | None = None
    value: object = None


TOUR = (
    Step("open the app"),
    Step("manifold page", "manifold"),
    Step("manifold grid", "manifold", "manifold/grid", lambda i: 10 + i % 15),
    Step("sliders page", "sliders"),
    Step("slider step", "sliders", "sliders/mnist-vae-2d/z0", lambda i: round(-1.5 + 0.25 * (i % 12), 2)),
    Step("reconstruct page", "reconstruct"),
    Step("test image pick", "reconstruct", "reconstruct/example", lambda i: 1 + i % 200),
    Step("embeddings page", "embeddings"),
    Step("embeddings colour", "embeddings", "embeddings/colour", "KL"),
    Step("cvae page", "cvae"),
    Step("model picker: a CVAE", "cvae", "app/model", "mnist-cvae"),
    Step("cvae class", "cvae", "cvae/class", lambda i: i % 10),
)
BASELINE_TOUR = tuple(Step(f"rerun {k + 1}") for k in range(len(TOUR)))  # the one-line app: plain reruns


class ActionError(RuntimeError):
    """An action that did not end well: the message names why."""


@dataclass
class Session:
    """One visitor's websocket session: the pages the server listed, the widget states it has set, and
    the messages of the last finished run."""

    ws: object
    pages: dict[str, str] = field(default_factory=dict)  # url path -> page script hash
    page_hash: str = ""
    states: dict[str, object] = field(default_factory=dict)  # widget id -> WidgetState
    messages: list = field(default_factory=list)

    async def rerun(self, timeout: float) -> float:
        """Send a rerun with the current page and widget states; wait for the run to finish. Returns the
        seconds from the message sent to ``script_finished``; raises ActionError."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.page_script_hash = self.page_hash
        cs.widget_states.widgets.extend(self.states.values())
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        deadline = t0 + timeout
        self.messages = []
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise ActionError(f"no script_finished within {timeout:g} s")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                raise ActionError(f"no script_finished within {timeout:g} s") from None
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            kind = fm.WhichOneof("type")
            if kind == "new_session":  # each run starts with one
                self.messages = []
            elif kind == "navigation":  # st.navigation's pages, and the page this run draws
                self.pages = {p.url_pathname: p.page_script_hash for p in fm.navigation.app_pages}
                self.page_hash = fm.navigation.page_script_hash
            elif kind == "delta":
                self.messages.append(fm)
            elif kind == "script_finished" and fm.script_finished in FINISHED:
                seconds = time.perf_counter() - t0
                errors = [m.delta.new_element.exception.message for m in self.messages
                          if m.delta.WhichOneof("type") == "new_element" and m.delta.new_element.WhichOneof("type") == "exception"]
                if fm.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR or errors:
                    raise ActionError("exception: " + (errors[0] if errors else "compile error")[:200])
                return seconds

    async def act(self, step: Step, visitor: int, timeout: float) -> float:
        """Do one step (a page change, then a widget set on that page): the seconds of its run."""
        if step.page is not None:
            wanted = self.pages.get(step.page)
            if wanted is None:
                raise ActionError(f"no page {step.page!r} among {sorted(self.pages)}")
            if wanted != self.page_hash:
                self.page_hash = wanted
                if step.key is not None:  # arrive on the page first, as a visitor does
                    await self.rerun(timeout)
        if step.key is not None:
            tree = parse_tree_from_messages(self.messages)
            node = next((n for n in tree if isinstance(n, Widget) and n.key == step.key), None)
            if node is None:
                raise ActionError(f"no widget {step.key!r} on the page")
            self.states[node.proto.id] = widget_state(node, step.value(visitor) if callable(step.value) else step.value)
        return await self.rerun(timeout)


def widget_state(node: Widget, value) -> WidgetState:
    """The WidgetState a browser sends for ``node`` set to ``value``, as Streamlit's frontend (and
    AppTest) serialize it: a slider's values as doubles, a number input's as a double, a selectbox's and
    a segmented control's as the option's label (``value`` is that label). Raises ActionError for a
    label the widget does not offer, and for another kind of widget (not needed by the tour)."""
    ws = WidgetState(id=node.proto.id)
    if node.type == "slider":
        ws.double_array_value.data[:] = [float(value)]
    elif node.type == "number_input":
        ws.double_value = float(value)
    elif node.type in ("selectbox", "button_group"):
        labels = list(node.proto.options) if node.type == "selectbox" else [o.content for o in node.proto.options]
        if str(value) not in labels:
            raise ActionError(f"{node.key!r} offers {labels[:12]}, not {value!r}")
        if node.type == "selectbox":
            ws.string_value = str(value)
        else:
            ws.string_array_value.data[:] = [str(value)]
    else:
        raise ActionError(f"{node.key!r} is a {node.type}, which the driver does not set")
    return ws


async def visitor(url: str, number: int, tour, think: float, delay: float, timeout: float, out: list, rng) -> None:
    """One visitor: wait ``delay``, connect, walk ``tour`` with think times; each action appended to
    ``out`` as (step name, seconds or None, error or None)."""
    await asyncio.sleep(delay)
    try:
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout,
                                      ping_interval=None) as ws:
            session = Session(ws)
            for k, step in enumerate(tour):
                if k:
                    await asyncio.sleep(think * rng.uniform(0.5, 1.5))
                try:
                    out.append((step.name, await session.act(step, number, timeout), None))
                except ActionError as err:
                    out.append((step.name, None, str(err)))
    except (OSError, websockets.exceptions.WebSocketException) as err:
        out.append(("connection", None, f"{type(err).__name__}: {err}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run SCRIPT`` on a free loopback port, headless, no usage statistics; its CPU time and
    peak memory from /proc."""

    def __init__(self, script: Path, cwd: Path):
        self.port = free_port()
        env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.enableXsrfProtection", "false"], cwd=cwd, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"ws://127.0.0.1:{self.port}/_stcore/stream"

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds until the health endpoint answers; raises RuntimeError when the server exits or is late."""
        while time.perf_counter() - self.t_start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stcore/health", timeout=2):
                    return time.perf_counter() - self.t_start
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout:g} s")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def peak_rss_mib(self) -> float:  # VmHWM is in KiB (the kernel writes "kB")
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(server: Server, n: int, tour, think: float, timeout: float, seed: int, together: bool = False) -> dict:
    """N visitors on ``server``: their actions' times and errors, the server's CPU and peak memory."""
    rng, out = random.Random(seed), []
    delays = [0.0] * n if together else [think * k / max(n, 1) for k in range(n)]
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()

    async def everyone():
        await asyncio.gather(*(visitor(server.url, k, tour, think, delays[k], timeout, out, rng) for k in range(n)))

    # in a thread of its own: asyncio.run refuses to start inside a running event loop (Playwright's sync
    # API keeps one in the main thread, as under the test suite)
    runner = threading.Thread(target=asyncio.run, args=(everyone(),), name="load-visitors")
    runner.start()
    runner.join()
    wall = time.perf_counter() - t0
    cores = (server.cpu_seconds() - cpu0) / wall
    times = np.array([t for _, t, e in out if e is None])
    errors = [f"{name}: {e}" for name, _, e in out if e is not None]
    q = (lambda p: float(np.percentile(times, p))) if times.size else (lambda p: float("nan"))
    return {"n": n, "actions": len(out), "ok": int(times.size), "errors": len(errors), "error_examples": errors[:3],
            "p50_ms": 1000 * q(50), "p95_ms": 1000 * q(95), "max_ms": 1000 * (float(times.max()) if times.size else float("nan")),
            "wall_s": wall, "cpu_cores": cores, "cpu_share": cores / (os.cpu_count() or 1),
            "peak_rss_mib": server.peak_rss_mib(),
            "per_step_p95_ms": {name: 1000 * float(np.percentile([t for s, t, e in out if s == name and e is None], 95))
                                for name in dict.fromkeys(s for s, _, e in out if e is None)}}


def row(label: str, r: dict) -> str:
    return (f"| {label} | {r['n']} | {r['ok']}/{r['actions']} | {r['errors']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['max_ms']:.0f} | {r['cpu_cores']:.2f} ({r['cpu_share']:.0%}) | {r['peak_rss_mib']:.0f} |")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[1, 8, 16, 32, 64], help="visitors at once, one run per value")
    p.add_argument("--think", type=float, default=5.0, help="seconds between a visitor's actions (0.5x to 1.5x)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds an action may take before it counts as an error")
    p.add_argument("--cold", type=int, default=None, metavar="N",
                   help="instead: N visitors arriving together on a server that has just started (first page only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    results = {"think_s": a.think, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        baseline_script = Path(tmp) / "hello.py"
        baseline_script.write_text(BASELINE_APP)
        apps = [("app", ROOT / "app.py", ROOT, TOUR), ("one-line app", baseline_script, Path(tmp), BASELINE_TOUR)]
        if a.cold:
            apps = [(label, script, cwd, tour[:1]) for label, script, cwd, tour in apps]
        print("| server | N | actions done | errors | p50 ms | p95 ms | max ms | server CPU, cores (share) | peak RSS MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, script, cwd, tour in apps:
            server = Server(script, cwd)
            try:
                ready = server.wait_ready()
                if not a.cold:  # one visitor's walk first, not counted: the steady state, not the first loads
                    warm = load(server, 1, tour, 0.0, a.timeout, a.seed)
                    print(f"| {label}: warm-up walk, not counted | 1 | {warm['ok']}/{warm['actions']} | {warm['errors']} | "
                          f"{warm['p50_ms']:.0f} | {warm['p95_ms']:.0f} | {warm['max_ms']:.0f} | | |", flush=True)
                for n in [a.cold] if a.cold else a.n:
                    r = load(server, n, tour, a.think, a.timeout, a.seed, together=bool(a.cold))
                    r.update(server=label, ready_s=ready)
                    results["runs"].append(r)
                    print(row(label, r), flush=True)
                    if r["errors"]:
                        print("  errors, for example:", "; ".join(r["error_examples"]), flush=True)
            finally:
                server.stop()
    for r in results["runs"]:
        if r["server"] == "app":
            base = next((b for b in results["runs"] if b["server"] == "one-line app" and b["n"] == r["n"]), None)
            if base and base["p95_ms"] > 0:
                print(f"N = {r['n']}: the app's p95 is {r['p95_ms'] / base['p95_ms']:.1f}x the one-line app's")
    over = [r["n"] for r in results["runs"] if r["server"] == "app" and r["p95_ms"] > 1000]
    if not a.cold:
        print("p95 first above 1 s at N =", over[0] if over else f"none of {a.n}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
