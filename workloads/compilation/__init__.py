"""Compile a Hugging Face encoder into a served artifact (Neuron, CPU or CUDA) with a manifest beside it."""
