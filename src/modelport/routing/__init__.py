"""The endpoint router's request path, shared by the daemon and the standalone router of a
cluster (``modelport router --config``): keys, scoring routes, split, mirror, admission, proxying,
metrics and request logs, over any backend that provides ``routing.backend``'s protocols."""
