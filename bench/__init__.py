"""sluiceway's benchmark suite: each module measures us against the peers a user would otherwise pick."""
