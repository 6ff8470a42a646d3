#!/usr/bin/env python3
"""Reads the fake oned with OpenNebula's own Python client (pyone) and prints what it saw as JSON.

Usage: pyone_check.py ENDPOINT SESSION MODE [ARGS]
  pool OFFSET SIZE  one.vmpool.infoextended(-2, OFFSET, -SIZE, -1), or all VMs with -1 -1
  short             one.vmpool.info(-2, -1, -1, -1)
  version           one.system.version()
  error             one.vmpool.infoextended(...), expecting an exception
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
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
