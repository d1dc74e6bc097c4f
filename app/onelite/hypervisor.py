"""The simulated drivers and scheduler: a background loop that makes the state changes oned's
dummy drivers and mm_sched make, after the API call that asked for them has answered.

It decides when (each change is due, hosts are monitored, PENDING VMs are placed); what a VM's
state change does is api/lifecycle.py's."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable

from one import template as tpl

from .api import images, infra, lifecycle, vmstate, vnets
from .cloud import Call
from .engine import Engine

log = logging.getLogger("onelite.hypervisor")

MONITOR_EVERY = 60.0  # seconds between two dummy monitoring probes of a host


class Hypervisor:
    def __init__(self, engine: Engine, interval: float = 1.0):
        self.engine = engine
        self.interval = interval
        self._wake = threading.Condition()
        self._stop = False
        self._next_sched = 0.0
        self._thread = threading.Thread(target=self._loop, name="hypervisor", daemon=True)
        engine.cloud.on_steps = self.wake

    def start(self):
        self._thread.start()

    def stop(self):
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def wake(self, due: float | None = None):
        with self._wake:
            self._wake.notify()

    def _loop(self):
        clock = self.engine.cloud.clock
        while True:
            try:
                self.engine.as_oneadmin(self._drivers)
                if clock() >= self._next_sched:
                    self.engine.as_oneadmin(self._schedule)
                    self._next_sched = clock() + self.interval
            except Exception:  # the loop must outlive any bad object
                log.exception("hypervisor step failed")
            with self.engine.lock:
                due = self.engine.cloud.store.pending_next()
            wait = self._next_sched - clock()
            if due is not None:
                wait = min(wait, due - clock())
            with self._wake:
                if self._stop:
                    return
                if wait > 0:
                    self._wake.wait(wait)
                if self._stop:
                    return

    # -- drivers -----------------------------------------------------------
    def _drivers(self, call: Call):
        db = call.db
        now = call.cloud.clock()
        for kind, oid in db.pending_due(now):
            obj = db.get(kind, oid)
            db.pending_clear(kind, oid)
            if obj is None:
                continue
            if kind == "vm":
                self._vm_steps(call, obj, now)
            elif kind == "vnet":
                vnets.settle(db, obj)
            elif kind == "image":
                images.settle(call, obj)

    @staticmethod
    def _vm_steps(call: Call, vm: dict, now: float):
        """One driver step per wake, so every intermediate state is seen for a while even when the
        loop runs late (a driver answers one event at a time in oned too)."""
        steps = vm.get("_NEXT") or []
        if steps and steps[0][2] <= now:
            state, lcm, _due = steps.pop(0)
            lifecycle.apply_step(call, vm, state, lcm)
            if steps:
                steps[0][2] = max(steps[0][2], now + lifecycle.STEP / 2)
        vm["_NEXT"] = steps
        vmstate.save_vm(call, vm)

    # -- monitoring and scheduling -------------------------------------------
    def _schedule(self, call: Call):
        db = call.db
        now = call.cloud.now()
        hosts = db.all("host")
        for h in hosts:
            if h["STATE"] == infra.HOST_INIT or now - h["LAST_MON_TIME"] >= MONITOR_EVERY:
                db.put("host", infra.monitor(h, now))
        usable = [h for h in sorted(hosts, key=lambda h: h["ID"]) if h["STATE"] == infra.HOST_MONITORED]
        if not usable:
            return
        for row in reversed(db.rows("vm", "state = ?", (vmstate.PENDING,))):
            vm = db.get("vm", row[0])
            host = self._pick_host(call, vm, usable)
            if host is not None:
                self._deploy(call, vm, host)

    @staticmethod
    def _pick_host(call: Call, vm: dict, hosts: list[dict]) -> dict | None:
        owner = db_user = call.db.get("user", vm["UID"])
        if db_user is None:
            return None
        as_owner = Call(call.cloud, "scheduler", owner, set(owner["GROUPS"]))
        system_ds = call.db.get("datastore", 0)
        if system_ds is None or not as_owner.can("datastore", system_ds, "USE"):
            return None
        wanted = _requirements(tpl.get(vm["USER_TEMPLATE"], "SCHED_REQUIREMENTS"))
        for h in hosts:
            if wanted and not wanted(h):
                continue
            if as_owner.can("host", h, "USE"):
                return call.db.get("host", h["ID"])
        return None

    @staticmethod
    def _deploy(call: Call, vm: dict, host: dict):
        lifecycle.open_history(call, vm, host)
        lifecycle.vnc_port(vm)
        resume = vm.get("_RESUME") or ""
        vm["_RESUME"] = ""
        if resume == "stopped":
            lifecycle.set_state(vm, vmstate.ACTIVE, vmstate.PROLOG_RESUME)
            lifecycle.queue(call, vm, (vmstate.ACTIVE, vmstate.RUNNING))
        elif resume == "undeployed":
            lifecycle.set_state(vm, vmstate.ACTIVE, vmstate.PROLOG_UNDEPLOY)
            lifecycle.queue(call, vm, (vmstate.ACTIVE, vmstate.BOOT_UNDEPLOY), (vmstate.ACTIVE, vmstate.RUNNING))
        else:
            lifecycle.set_state(vm, vmstate.ACTIVE, vmstate.PROLOG)
            lifecycle.queue(call, vm, (vmstate.ACTIVE, vmstate.BOOT), (vmstate.ACTIVE, vmstate.RUNNING))
        host["VMS"] = sorted(set(host["VMS"]) | {vm["ID"]})
        host["CPU_USAGE"] += int(float(tpl.get(vm["TEMPLATE"], "CPU") or 0) * 100)
        host["MEM_USAGE"] += int(tpl.get(vm["TEMPLATE"], "MEMORY") or 0) * 1024
        call.db.put("host", host)
        vmstate.save_vm(call, vm)


_REQ = re.compile(r'^\s*(ID|NAME|HOSTNAME)\s*=\s*"?([^"]*)"?\s*$')


def _requirements(expr) -> Callable[[dict], bool] | None:
    """The simple SCHED_REQUIREMENTS forms (ID="3", NAME="host0"); anything else places anywhere."""
    if not isinstance(expr, str):
        return None
    m = _REQ.match(expr)
    if not m:
        return None
    key, value = m.groups()
    if key == "ID":
        return lambda h: str(h["ID"]) == value
    return lambda h: h["NAME"] == value
