"""``modelport k8s render``: an online endpoint as Kubernetes or KServe manifests.

:mod:`.inputs` reads the endpoint (stored, or from files) with what each deployment's image
serves; :mod:`.core` and :mod:`.kserve` make the objects; :mod:`.render` decides which; :mod:`.writer`
writes them as deterministic YAML. Nothing here talks to a cluster.
"""
