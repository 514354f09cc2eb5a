"""Sub-commands of the ``mestudio`` CLI, one module each (see :mod:`mestudio.cli`)."""
