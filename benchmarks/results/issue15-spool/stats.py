# Counters for the spool prototype (spool-prototype.patch): parcels posted, taken, withdrawn.
import collections

import queuelab.store.spool as sp

C = collections.Counter()
_post, _written, _collect, _withdraw = sp.Parcel.post, sp.Parcel.written, sp.Spool.collect, sp.Parcel.withdraw


def post(self):
    C["post"] += 1
    return _post(self)


def written(self):
    r = _written(self)
    C["written" if r else "notwritten"] += 1
    return r


def collect(self, room=1000):
    r = _collect(self, room)
    C["collect"] += 1
    C["taken_rows"] += len(r.rows) if r else 0
    C["collect_hit"] += bool(r)
    return r


def withdraw(self, conn):
    C["withdraw_posted"] += self._fd is not None
    return _withdraw(self, conn)


sp.Parcel.post, sp.Parcel.written, sp.Spool.collect, sp.Parcel.withdraw = post, written, collect, withdraw
