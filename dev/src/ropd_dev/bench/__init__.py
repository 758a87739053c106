"""The benchmarks behind `ropd bench ...`: each module registers its own command (`register`)."""
