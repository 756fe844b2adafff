"""Model runtime: a model's serving config and the flavors that load and run it.

``config`` reads ``config.yaml`` or Triton's ``config.pbtxt`` into one :class:`ModelConfig`
(a definition of ``modelport.schema.model_config``) and ``completion`` completes it from the
loaded model; ``predictor`` defines the :class:`Predictor`
contract (named numpy tensors in and out, with metadata) that batching, protocols and
metrics are written against, and ``load_predictor`` loads a model with its flavor, importing
its framework only when a model needs it. ``flavor_contract`` is what a flavor is (detection,
loading, Triton names, defaults), ``flavor_catalog`` the registered flavors, modelport's own and
those outside packages add through the ``modelport.flavors`` entry-point group.
"""

from modelport.core.datatypes import DATATYPES, datatype_of
from modelport.runtime.completion import complete_config
from modelport.runtime.config import (
    DEFAULT_MAX_BATCH_SIZE,
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    TensorConfig,
    VersionPolicy,
    config_from_dict,
    load_config,
    load_config_pbtxt,
    load_config_yaml,
    normalize_datatype,
    override_config,
)
from modelport.runtime.predictor import (
    DEVICES,
    Predictor,
    TensorMeta,
    check_inputs,
    load_predictor,
    numpy_dtype,
)

__all__ = [
    "DATATYPES",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEVICES",
    "DynamicBatching",
    "InstanceGroup",
    "ModelConfig",
    "Predictor",
    "TensorConfig",
    "TensorMeta",
    "VersionPolicy",
    "check_inputs",
    "complete_config",
    "override_config",
    "config_from_dict",
    "datatype_of",
    "load_config",
    "load_config_pbtxt",
    "load_config_yaml",
    "load_predictor",
    "normalize_datatype",
    "numpy_dtype",
]
