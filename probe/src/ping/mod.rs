//! ICMPv6 echo measurement (being written).
