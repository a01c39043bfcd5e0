"""The tenancy boundary of the embedded AWS: a WSGI middleware in front of moto.

Every request is authenticated with SigV4 against Airdock's identity store (the IAM config,
the bootstrap admin, minted keys and role sessions) and authorized with Airdock's policy engine
(identity policies, S3 bucket and SQS queue policies, condition keys) before moto sees it. A
refused request gets the error its service's protocol defines and changes nothing. moto's own
management routes (``/moto-api/...``: reset, state dumps) are closed.

The emulator loads it by import path
(``--front controlplane.aws_gateway.gateway:from_environment``),
so the emulator itself stays independent of Airdock.
"""
