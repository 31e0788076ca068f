"""The operator surface: the admin API served beside the producer, the operator actions it runs,
the `vb2po` operator commands that call it, and the web console.

It depends on producer and consumer, never the reverse: the `vb2po producer` command composes
the producer service with the admin API (`vb2po.cli`)."""
