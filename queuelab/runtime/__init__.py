"""The runtime: what runs jobs. A worker takes turns (ack + claim, :mod:`.turns`), holds its
jobs in one state each (:mod:`.held`), runs them on slot threads (:mod:`.slots`), decides
each outcome (:mod:`.execution`) and keeps its leases alive (:mod:`.maintenance`); pools
of threads or supervised processes (:mod:`.pool`, :mod:`.supervisor`) and the autoscaler
(:mod:`.autoscale`) sit on top. It imports the store and the values below it, never the
facade, the API or the lab."""

from queuelab.runtime.autoscale import Autoscaler, ScalePolicy, decide_scale
from queuelab.runtime.context import Runtime
from queuelab.runtime.pool import ProcessPool, ThreadPool
from queuelab.runtime.worker import Worker

__all__ = ["Autoscaler", "ProcessPool", "Runtime", "ScalePolicy", "ThreadPool", "Worker", "decide_scale"]
