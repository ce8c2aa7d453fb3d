"""A real headless Chromium driven over the DevTools protocol (python ``websockets``, no Node): load a page, collect
console errors and exceptions, evaluate JavaScript, take a screenshot.

The browser runs with a fresh profile and every background-networking feature off (the test machine has no network,
and a page under test must not need one).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars")


def chromium_path() -> str | None:
    for p in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if p and Path(p).is_file() and os.access(p, os.X_OK):
            return p
    return None


@dataclass
class PageLoad:
    errors: list[str] = field(default_factory=list)  # console.error, uncaught exceptions, failed loads
    result: Any = None
    screenshot: bytes | None = None


async def _session(url: str, script: str, *, width: int, height: int, settle_sec: float, screenshot: bool,
                   timeout: float) -> PageLoad:
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("no Chromium found (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws_url = await asyncio.wait_for(asyncio.to_thread(_devtools_url, proc), timeout)
        async with websockets.connect(ws_url, max_size=None) as ws:
            return await asyncio.wait_for(_drive(ws, url, script, width, height, settle_sec, screenshot), timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_url(proc: subprocess.Popen[str]) -> str:
    """The browser's DevTools address from its stderr; the rest of stderr is drained so Chromium never blocks on a
    full pipe."""
    assert proc.stderr is not None
    stderr = proc.stderr
    seen = []
    for line in stderr:
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
            return m.group(1)
        seen.append(line)
    raise RuntimeError(f"Chromium exited ({proc.wait()}) before opening DevTools: {''.join(seen[-5:])}")


async def _drive(ws: Any, url: str, script: str, width: int, height: int, settle_sec: float,
                 screenshot: bool) -> PageLoad:
    ids = itertools.count(1)
    out = PageLoad()
    pending: dict[int, asyncio.Future[Any]] = {}
    loaded = asyncio.Event()
    session: str | None = None

    async def reader() -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in pending:
                pending.pop(msg["id"]).set_result(msg)
                continue
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = params["exceptionDetails"]
                out.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                               for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Page.loadEventFired":
                loaded.set()

    async def call(method: str, params: dict[str, Any] | None = None, *, target: bool = True) -> dict[str, Any]:
        i = next(ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending[i] = fut
        msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
        if target and session:
            msg["sessionId"] = session
        await ws.send(json.dumps(msg))
        res = await fut
        if "error" in res:
            raise RuntimeError(f"{method}: {res['error']}")
        return res.get("result", {})

    task = asyncio.create_task(reader())
    try:
        target_id = (await call("Target.createTarget", {"url": "about:blank"}, target=False))["targetId"]
        session = (await call("Target.attachToTarget", {"targetId": target_id, "flatten": True},
                              target=False))["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            await call(f"{domain}.enable")
        await call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                          "mobile": False})
        await call("Page.navigate", {"url": url})
        await loaded.wait()
        await asyncio.sleep(settle_sec)
        res = await call("Runtime.evaluate", {"expression": script, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            out.errors.append(f"check script: {res['exceptionDetails']}")
        out.result = res.get("result", {}).get("value")
        if screenshot:
            shot = await call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            out.screenshot = base64.b64decode(shot["data"])
    finally:
        task.cancel()
    return out


def load(path: Path, script: str = "null", *, width: int = 1300, height: int = 900, settle_sec: float = 1.0,
         screenshot: bool = False, timeout: float = 120.0) -> PageLoad:
    """Open ``path`` in headless Chromium, wait for load (+ ``settle_sec``), evaluate ``script``."""
    return asyncio.run(_session(path.resolve().as_uri(), script, width=width, height=height, settle_sec=settle_sec,
                                screenshot=screenshot, timeout=timeout))


# Per plotly div: does it hold a drawn SVG with marks in its plotting area? (a blank or failed plot has none)
CHARTS_DREW = """
(() => Array.from(document.querySelectorAll('div.plotly-graph-div')).map(d => {
  const svg = d.querySelector('svg.main-svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = d.querySelectorAll('g.mlayer path, g.mlayer image');
  let drawn = 0;
  marks.forEach(m => {
    if (m.tagName === 'image') {
      if ((m.getAttribute('href') || m.getAttribute('xlink:href') || '').length > 100) drawn++;
      return;
    }
    const a = m.getAttribute('d'); const box = m.getBBox();
    if (a && a.length > 4 && (box.width > 0 || box.height > 0)) drawn++;
  });
  return {id: d.id, width: box.width, height: box.height, marks: drawn, data: (d.data || []).length};
}))()
"""
