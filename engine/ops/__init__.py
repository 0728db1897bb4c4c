"""Op families; each module registers its specs with :func:`engine.core.registry.register`."""
