"""Loopback ports for the local stack: a broker's two listeners on one port refuse to start."""
from devstack.ports import free_port, free_ports


def test_ports_are_distinct_and_never_handed_out_twice_by_one_process():
    together = free_ports(50)
    one_by_one = [free_port() for _ in range(300)]
    assert len(set(together)) == 50 and len(set(one_by_one)) == 300
    assert not set(together) & set(one_by_one)
