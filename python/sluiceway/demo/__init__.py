"""``sluiceway demo``: the whole pipeline on 127.0.0.1 against emulators, with simulated tenants."""
