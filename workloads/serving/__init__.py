"""HTTP model server for SageMaker endpoints and the EKS serving Deployment.

Speaks the SageMaker real-time contract (`/ping`, `/invocations`) and the Open Inference Protocol v2
(KServe/Triton REST), batches concurrent requests dynamically, and caches results in-process and in Redis.
"""
