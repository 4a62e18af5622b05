"""EC2 actions, one module per resource kind; ``HANDLERS`` maps each action to its function."""

from clc.ec2 import images, instances, keypairs, regions

HANDLERS = {}
for _module in (regions, keypairs, images, instances):
    HANDLERS.update(_module.HANDLERS)
