"""The other role: a catalog that judges Locust masters (real releases, our fake master, any command) with fake
workers. ``run`` starts a master per case; ``cases`` is the catalog; ``workers`` the fake workers' sockets;
``masters`` the master commands and processes; ``master_log`` reads what a master logs."""
