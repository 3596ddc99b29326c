#!/bin/sh
# Golden listings that have no verbatim example in the reference, rendered with printf(1) from the
# format strings of ipvsadm 1.31 (print_title, print_service_entry, print_largenum, print_conn).
# list_numeric/stats/rate/thresholds/persistent_conn/tun_info/conns are the reference's examples.
set -e
cd "$(dirname "$0")"
H='IP Virtual Server version 1.2.1 (size=4096)\n'
TITLE_STATS="$(printf '%-33s %8s %8s %8s %8s %8s' 'Prot LocalAddress:Port' Conns InPkts OutPkts InBytes OutBytes)"
TITLE='Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n'

# K/M/G/T suffixes: 123456789 -> K, 12345678901 -> M, 98765432109876 -> G, 123456789012345678 -> T.
{
  printf "$H"; printf '%s\n  -> RemoteAddress:Port\n' "$TITLE_STATS"
  printf '%-33s%8sK%8sM%9s%8sG%8sT\n' 'TCP  10.0.0.1:80' 123456 12345 0 98765 123456
  printf '  -> %-28s%9s%8sK%8sK%8sM%8sT\n' '10.0.0.2:80' 99999999 100000 999999 1000 100
} > stats_large.txt

# --exact: width 9, or the number of digits plus one.
{
  printf "$H"; printf '%s\n  -> RemoteAddress:Port\n' "$TITLE_STATS"
  printf '%-33s%10s%12s%9s%15s%19s\n' 'TCP  10.0.0.1:80' 123456789 12345678901 0 98765432109876 123456789012345678
  printf '  -> %-28s%9s%10s%10s%11s%16s\n' '10.0.0.2:80' 99999999 100000000 999999999 1000000000 100000000000000
} > stats_exact.txt

# IPv6: names in brackets, never truncated; mask printed as a prefix length; fwmark IPv6.
{
  printf "$H$TITLE"
  printf '%s %s persistent %u mask %i\n' 'TCP  [2001:db8::1]:80' rr 300 64
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '[2001:db8::10]:80' Masq 1 3 4
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '[2001:db8:1234:5678:9abc:def0:1:2]:8080' Masq 2 0 0
  printf '%s %s\n' 'FWM  2 IPv6' wlc
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '[2001:db8::20]:0' Route 1 0 0
} > ipv6.txt

# The signed-int address comparison: 10.1.1.1 lands after 192.168.1.1 and 203.0.113.10.
{
  printf "$H$TITLE"
  printf '%s %s\n' 'TCP  192.168.1.1:80' rr
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '192.168.1.10:80' Route 1 0 0
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '203.0.113.5:80' Route 1 0 0
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '10.0.0.5:80' Route 1 0 0
  printf '%s %s\n' 'TCP  203.0.113.10:80' rr
  printf '%s %s\n' 'TCP  10.1.1.1:80' rr
} > sort_quirk.txt

# Every service column: sched flags (flag-N for other schedulers), ops, fwmark, zero port.
{
  printf "$H$TITLE"
  printf '%s %s\n' 'TCP  10.0.0.1:0' 'wlc persistent 360'
  printf '%s %s\n' 'TCP  10.0.0.1:80' 'wrr (flag-1,flag-3)'
  printf '%s %s\n' 'UDP  10.0.0.1:53' 'mh (mh-fallback,mh-port) persistent 60 mask 255.255.0.0 ops'
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '10.0.1.1:53' Local 1 0 0
  printf '%s %s\n' 'FWM  7' 'lc persistent 1800'
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '10.0.2.1:0' Masq 65535 4294967295 7
} > columns.txt

# -c --persistent-conn: title's destination is %-18s, a row's %-16s; pe columns only with pe data.
{
  printf 'IPVS connection entries\n'
  printf 'pro expire %-11s %-18s %-18s %-18s %-16s %s\n' state source virtual destination 'pe name' pe_data
  printf '%-3s %-6s %-11s %-18s %-18s %s\n' TCP 14:59 ESTABLISHED 10.1.1.5:51234 192.168.6.240:80 192.168.6.2:80
  printf '%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n' UDP 00:58 UDP 10.1.1.9:5060 192.168.6.240:5060 10.0.1.4:5060 sip abc123@host
  printf '%-3s %-6s %-11s %-18s %-18s %s\n' IP 100:05 NONE 10.1.1.0:0 0.0.0.7:0 10.0.2.1:0
  printf '%-3s %-6s %-11s %-18s %-18s %s\n' TCP 00:07 TIME_WAIT '[2001:db8::99]:4000' '[2001:db8::1]:80' '[2001:db8::10]:80'
} > conns_pe.txt

# Non-numeric: host and service names, truncation of the service (33) and dest (28) names.
{
  printf "$H$TITLE"
  printf '%s %s\n' "$(printf '%-4s %s' TCP 'www.example.com:http')" wlc
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' 'rs1.example.com:http' Route 1 0 0
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '192.168.6.3:http' Route 1 0 0
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' 'a-very-long-real-server-name' Route 1 0 0
  printf '%s %s\n' 'UDP  virtual-service-with-long-na' rr
  printf '  -> %-28s %-7s %-6d %-10u %-10u\n' '10.0.0.9:5353' Masq 1 0 0
} > names.txt
{
  printf -- '-A -t www.example.com:http -s wlc\n'
  printf -- '-a -t www.example.com:http -r rs1.example.com:http -g -w 1\n'
  printf -- '-a -t www.example.com:http -r 192.168.6.3:http -g -w 1\n'
  printf -- '-a -t www.example.com:http -r a-very-long-real-server-name.example.com:http -g -w 1\n'
  printf -- '-A -u virtual-service-with-long-name.example.org:domain -s rr\n'
  printf -- '-a -u virtual-service-with-long-name.example.org:domain -r 10.0.0.9:5353 -m -w 1\n'
} > save_names.txt

# -S -n over every saved attribute; thresholds are not saved (ipvsadm 1.31).
{
  printf -- '-A -t 192.168.6.240:80 -s wlc\n'
  printf -- '-a -t 192.168.6.240:80 -r 192.168.6.2:80 -g -w 1\n'
  printf -- '-a -t 192.168.6.240:80 -r 192.168.6.3:80 -g -w 0\n'
  printf -- '-A -t 192.168.6.240:443 -s rr -p 300 -M 255.255.255.0\n'
  printf -- '-a -t 192.168.6.240:443 -r 192.168.16.3:443 -m -w 1\n'
  printf -- '-a -t 192.168.6.240:443 -r 192.168.16.5:8443 -m -w 2\n'
  printf -- '-A -t 207.175.44.110:80 -s rr\n'
  printf -- '-a -t 207.175.44.110:80 -r 192.168.10.1:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n'
  printf -- '-a -t 207.175.44.110:80 -r 192.168.10.2:80 -i -w 1 --tun-type gre --tun-csum\n'
  printf -- '-a -t 207.175.44.110:80 -r 192.168.10.3:80 -i -w 1 --tun-type ipip\n'
  printf -- '-A -u 192.168.6.240:53 -s sh -b sh-fallback,sh-port\n'
  printf -- '-a -u 192.168.6.240:53 -r 10.0.1.4:53 -m -w 1\n'
  printf -- '-A -u 192.168.6.240:5060 -s rr -o\n'
  printf -- '-A -t [2001:db8::1]:80 -s rr -p 300 -M 64\n'
  printf -- '-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -m -w 1\n'
  printf -- '-A -f 1 -s rr -p 360\n'
  printf -- '-a -f 1 -r 192.168.10.1:0 -m -w 1\n'
  printf -- '-A -f 2 -6 -s wlc\n'
  printf -- '-a -f 2 -6 -r [2001:db8::20]:0 -g -w 1\n'
} > save.txt
