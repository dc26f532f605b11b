"""Running suites on a Ray cluster: Ray Jobs submission and following (``jobs``) and the storage
every node can reach (``storage``)."""
