"""Workers, pools, prefetch, supervision, maintenance and autoscaling: stepped, threaded and in real processes."""
