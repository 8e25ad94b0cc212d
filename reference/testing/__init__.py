"""What the tests, the theory checks and the benchmarks share: random networks and problems,
central differences, rescaled problems (the same problem in other units), the profiles of
the property tests, and the check that printed text holds numbers, not NumPy reprs.

Importing this module needs only the package's own dependencies: hypothesis (property
profiles) and mpmath (the 50-digit LMI) belong to the ``test`` extra and are imported by
the functions that use them.

Every generator takes a seed or a ``numpy.random.Generator`` and draws in a fixed order,
so a seed gives the same network, bit for bit, on every run.
"""
from reference.testing._compare import (
                                        NUMPY_REPR,
                                        REDUCTION_OUTPUT_RTOL,
                                        NumpyRepr,
                                        assert_numbers_only,
                                        central_difference,
                                        exact_lmi,
                                        exact_rho,
                                        lipsdp_brackets_meet,
                                        lipsdp_ordered,
                                        numpy_typed,
                                        relative_error,
                                        sampled_max_norm,
)
from reference.testing._networks import (
                                        OtherSpline,
                                        bias_free_relu_cones,
                                        deepsplines_state_dict,
                                        loss_targets,
                                        oracle_inputs,
                                        oracle_model,
                                        random_net,
                                        single_neuron,
                                        solve_instance,
)
from reference.testing._profiles import DEFAULT_EXAMPLES, PROFILES, SLOW_EXAMPLES, check_property
from reference.testing._rescale import law, rescale, rescale_case

__all__ = ["random_net", "single_neuron", "loss_targets", "solve_instance", "oracle_model",
           "oracle_inputs", "OtherSpline", "bias_free_relu_cones", "deepsplines_state_dict",
           "central_difference", "relative_error", "sampled_max_norm", "REDUCTION_OUTPUT_RTOL",
           "lipsdp_brackets_meet", "lipsdp_ordered", "exact_lmi", "exact_rho", "rescale",
           "law", "rescale_case", "DEFAULT_EXAMPLES", "SLOW_EXAMPLES", "PROFILES",
           "check_property", "NUMPY_REPR", "NumpyRepr", "assert_numbers_only",
           "numpy_typed"]
