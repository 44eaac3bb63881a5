"""Fine-tune a BERT-style encoder with a classification head: laptop, torchrun, SageMaker and EKS alike."""
