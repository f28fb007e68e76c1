"""The gfal2 steps of the gfal2 integration test (tests/gfal2.rs).

Run under Debian's /usr/bin/python3 with its python3-gfal2 module and the
gfal2 HTTP plugin, as FTS and the gfal-* tools use them. One step per
call; prints what the Rust side asserts on; exits non-zero on failure.

    gfal2_client.py BASE TOKEN STEP ARGS...

A TOKEN of "-" sets no credential on the context: gfal2 then reads one
from BEARER_TOKEN (as FTS hands a WLCG token to it), or has none.
"""

import sys
import time

import gfal2


def main():
    base, token, step, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    ctx = gfal2.creat_context()
    if token != "-":
        ctx.cred_set(base, ctx.cred_new("BEARER", token))

    def params():
        p = ctx.transfer_parameters()
        p.overwrite = True
        p.set_checksum(gfal2.checksum_mode.both, "ADLER32", "")
        return p

    if step == "mkdir":
        ctx.mkdir_rec(args[0], 0o755)
    elif step == "copy":
        # ADLER32 checked at both ends: source and destination must agree.
        ctx.filecopy(params(), args[0], args[1])
    elif step == "checksum":
        print(ctx.checksum(args[0], "ADLER32"))
    elif step == "status":
        print(ctx.getxattr(args[0], "user.status"))
    elif step == "archive-poll":
        # Prints "pending: ..." or "archived".
        err = ctx.archive_poll([args[0]])[0]
        print("archived" if err is None else "pending: %s" % err.message)
    elif step == "bring-online":
        errors, token = ctx.bring_online(args, 0, 3600, True)
        for e in errors:
            if e is not None and e.code != 11:  # 11: queued, not a failure
                sys.exit("bring_online: %s" % e.message)
        print(token)
    elif step == "poll":
        # Polls until every file is on disk (at most 60 s).
        req, surls = args[0], args[1:]
        deadline = time.time() + 60
        while True:
            errors = ctx.bring_online_poll(surls, req)
            if all(e is None for e in errors):
                print("online")
                return
            for e in errors:
                if e is not None and e.code != 11:
                    sys.exit("bring_online_poll: %s" % e.message)
            if time.time() > deadline:
                sys.exit("not online after 60 s")
            time.sleep(0.5)
    elif step == "release":
        req, surls = args[0], args[1:]
        for e in ctx.release(surls, req):
            if e is not None:
                sys.exit("release: %s" % e.message)
    else:
        sys.exit("unknown step " + step)


main()
