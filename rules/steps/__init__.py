"""The engine: one module per step of a build, each holding that step's work, its
up-to-date check and the record it writes (records.py), all given the Run (run.py) of
the build. No doit here: rules.graph and rules.publish make the steps into tasks.

    base.py      what an image is built on (scratch, a plan image, a registry image)
    parse.py     the Dockerfile on its base          copy.py   COPY sources -> layer inputs
    layer.py     one layer blob (and the remote layer cache)
    image.py     config and manifest                 layout.py out/oci/index.json
    push.py      to registries                       save.py   archives
    status.py    why an image is out of date         housekeeping.py  gc and verify
"""
