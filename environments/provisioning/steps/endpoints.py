"""Assign the environment's web server hostname and, for customer-managed endpoints, the VPC
endpoint service names MWAA reports. Pure bookkeeping: it creates nothing outside the store."""

from __future__ import annotations

from environments.provisioning.step import DONE, Outcome, StepContext


class AssignEndpoints:
    name = "endpoints"

    def ensure(self, ctx: StepContext) -> Outcome:
        endpoints = {"webserver_hostname": ctx.placement.webserver_hostname(ctx.env_id)}
        if ctx.spec.get("EndpointManagement") == "CUSTOMER":
            endpoints["DatabaseVpcEndpointService"] = ctx.placement.vpce_service(ctx.env_id, "d")
            if ctx.spec.get("WebserverAccessMode") == "PRIVATE_ONLY":
                endpoints["WebserverVpcEndpointService"] = ctx.placement.vpce_service(
                    ctx.env_id, "w"
                )
        ctx.resources["endpoints"] = endpoints
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        ctx.resources.pop("endpoints", None)
        return DONE
