#!/usr/bin/env python3
"""Reads the fake oned with OpenNebula's own Python client (pyone) and prints what it saw as JSON.

Usage: pyone_check.py ENDPOINT SESSION MODE [ARGS]
  pool OFFSET SIZE  one.vmpool.infoextended(-2, OFFSET, -SIZE, -1), or all VMs with -1 -1
  short             one.vmpool.info(-2, -1, -1, -1)
  version           one.system.version()
  error             one.vmpool.infoextended(...), expecting an exception
  hosts             one.hostpool.info()
  host ID           one.host.info(ID)
  datastores        one.datastorepool.info()
  vm ID             one.vm.info(ID)
  config            one.system.config()
  call METHOD JSON  one.METHOD(*JSON args), printing the result or the exception
"""
import json
import sys

import pyone


def vm_view(vm):
    records = getattr(vm.HISTORY_RECORDS, "HISTORY", None) or []
    last = records[-1] if records else None
    return {
        "id": int(vm.ID),
        "name": vm.NAME or "",
        "owner": vm.UNAME or "",
        "state": int(vm.STATE),
        "lcm_state": int(vm.LCM_STATE),
        "deploy_id": vm.DEPLOY_ID or "",
        "host": (last.HOSTNAME or "") if last is not None else None,
        "action": int(last.ACTION) if last is not None else None,
    }


def host_view(h):
    vms = getattr(h.VMS, "ID", None) or []
    return {
        "id": int(h.ID),
        "name": h.NAME,
        "state": int(h.STATE),
        "prev_state": int(h.PREV_STATE),
        "cluster_id": int(h.CLUSTER_ID),
        "vms": [int(v) for v in vms],
        "fence_ip": h.TEMPLATE.get("FENCE_IP"),
        "error": h.TEMPLATE.get("ERROR"),
        "timestamp": h.MONITORING.TIMESTAMP,
    }


def ds_view(d):
    return {
        "id": int(d.ID),
        "name": d.NAME,
        "type": int(d.TYPE),
        "tm_mad": d.TM_MAD,
        "shared": d.TEMPLATE.get("SHARED"),
        "clusters": [int(c) for c in (getattr(d.CLUSTERS, "ID", None) or [])],
    }


def full_vm_view(vm):
    view = vm_view(vm)
    records = getattr(vm.HISTORY_RECORDS, "HISTORY", None) or []
    view["resched"] = int(vm.RESCHED)
    view["locked"] = int(vm.LOCK.LOCKED) if vm.LOCK is not None else None
    view["user_template"] = dict(vm.USER_TEMPLATE or {})
    view["hids"] = [int(h.HID) for h in records]
    view["ds_id"] = int(records[-1].DS_ID) if records else None
    return view


def call(one, method, args):
    target = one
    for part in method.split("."):
        target = getattr(target, part)
    try:
        result = target(*args)
    except Exception as e:  # report whatever pyone raised
        return {"exception": type(e).__name__, "message": str(e)}
    return {"exception": None, "result": result}


def main():
    endpoint, session, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    one = pyone.OneServer(endpoint, session=session, timeout=20)
    if mode == "pool":
        start, size = int(sys.argv[4]), int(sys.argv[5])
        end = -size if size > 0 else -1
        pool = one.vmpool.infoextended(-2, start, end, -1)
        print(json.dumps([vm_view(vm) for vm in pool.VM]))
    elif mode == "short":
        pool = one.vmpool.info(-2, -1, -1, -1)
        print(json.dumps([vm_view(vm) for vm in pool.VM]))
    elif mode == "version":
        print(json.dumps({"version": one.system.version()}))
    elif mode == "error":
        try:
            one.vmpool.infoextended(-2, -1, -1, -1)
        except Exception as e:  # report whatever pyone raised
            print(json.dumps({"exception": type(e).__name__, "message": str(e)}))
            return
        print(json.dumps({"exception": None}))
    elif mode == "hosts":
        print(json.dumps([host_view(h) for h in one.hostpool.info().HOST]))
    elif mode == "host":
        print(json.dumps(host_view(one.host.info(int(sys.argv[4])))))
    elif mode == "datastores":
        print(json.dumps([ds_view(d) for d in one.datastorepool.info().DATASTORE]))
    elif mode == "vm":
        print(json.dumps(full_vm_view(one.vm.info(int(sys.argv[4])))))
    elif mode == "config":
        conf = call(one, "system.config", [])
        if conf["exception"] is None:
            conf = {"exception": None, "type": type(conf["result"]).__name__}
        print(json.dumps(conf))
    elif mode == "call":
        print(json.dumps(call(one, sys.argv[4], json.loads(sys.argv[5])), default=str))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
