"""EC2 actions, one module per resource kind; ``HANDLERS`` maps each action to its function."""

from clc.ec2 import (addresses, images, instance_attributes, instances, keypairs, regions, securitygroups, tags,
                     volumes)

HANDLERS = {}
for _module in (regions, keypairs, images, instances, instance_attributes, tags, securitygroups, volumes,
                addresses):
    HANDLERS.update(_module.HANDLERS)
