"""MWAA's environment metrics: Airflow's statsd stream turned into CloudWatch metrics.

MWAA forces Airflow's statsd on and a sidecar publishes what it hears to CloudWatch under the
namespace `AmazonMWAA`, with `Environment` as the first dimension. Here the control plane's
background process plays the sidecar: one loopback UDP listener per environment (`hub`),
the statsd wire format (`statsd`), MWAA's names and dimensions (`catalog`) and the one-minute
aggregation into PutMetricData batches (`batch`).
"""
