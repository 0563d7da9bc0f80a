#!/bin/sh
# Tests the OpenWrt glue in deploy/ without OpenWrt:
#  - openwrt/files/lib/l3roamd/config.sh translates `uci show l3roamd` text
#    into TOML that Python's tomllib parses into exactly the expected values
#    (integers as integers, strings as strings, lists as arrays), under every
#    shell at hand (dash, busybox ash as on OpenWrt, bash);
#  - bad UCI values are refused with the option named, and the TOML in place
#    is left alone; writes are atomic and skipped when nothing changed;
#  - the babeld rules it writes match deploy/babeld/l3roamd.conf;
#  - the init scripts, sourced with stub procd functions, start the right
#    command with respawn and logging, register the reload trigger and come
#    after babeld; l3roamd-core's interface trigger and sync_meshifs (with
#    stand-ins for ubus, jsonfilter and l3roamd ctl) keep core's runtime mesh
#    interfaces to the netifd interfaces of mesh.mesh_proto that are up;
#  - sh -n / bash -n / shellcheck on every script;
#  - if an l3roamd binary is at hand (L3R_TEST_BIN, or target/{debug,release}
#    of the workspace) and `unshare -n` works, the five daemons start on the
#    generated TOML without a configuration error, in a network namespace of
#    their own.
# `uci show` output is made from UCI files by a small Python stand-in for uci
# (OpenWrt's uci is not on Debian). Prints `N passed, N failed, N skipped`;
# exits non-zero on any failure.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
FILES=$HERE/openwrt/files
LIB=$FILES/lib/l3roamd/config.sh
DEFAULT_CONFIG=$FILES/etc/config/l3roamd
BABELD_REFERENCE=$HERE/babeld/l3roamd.conf
DAEMONS='l3roamd-core clientmon client-db ndproxy prefixd'
SERVICES="$DAEMONS l3roamd-babeld"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/l3r-deploy-test.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
skipped=0

pass() {
	passed=$((passed + 1))
	echo "ok    $1"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL  $1"
	if [ -n "${2:-}" ]; then
		printf '%s\n' "$2" | sed 's/^/      /'
	fi
}

skip() {
	skipped=$((skipped + 1))
	echo "skip  $1"
	# In CI nothing may be skipped silently: a missing tool is a failure.
	if [ "${CI:-}" = true ]; then
		failed=$((failed + 1))
		echo "FAIL  (CI=true: a check may not be skipped)"
	fi
}

# check NAME COMMAND...: passes if COMMAND succeeds; shows its output if not.
check() {
	_name=$1
	shift
	if _out=$("$@" 2>&1); then
		pass "$_name"
	else
		fail "$_name" "$_out"
	fi
}

# ----- helpers -----

# uci_show FILE: prints what `uci show l3roamd` prints for the UCI file FILE.
uci_show() {
	python3 - "$1" <<'EOF'
import shlex
import sys

sections = []  # [name, type, {option: [values]}, [option order]]
counts = {}
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        words = shlex.split(line, comments=True)
        if not words or words[0] == "package":
            continue
        if words[0] == "config":
            kind = words[1]
            index = counts.get(kind, 0)
            counts[kind] = index + 1
            name = words[2] if len(words) > 2 else "@%s[%d]" % (kind, index)
            sections.append([name, kind, {}, []])
        elif words[0] in ("option", "list"):
            options, order = sections[-1][2], sections[-1][3]
            option, value = words[1], words[2]
            if option not in options:
                order.append(option)
                options[option] = []
            if words[0] == "option":
                options[option] = [value]
            else:
                options[option].append(value)
        else:
            sys.exit("not UCI: " + line)


def quote(value):
    return "'" + value.replace("'", "'\\''") + "'"


for name, kind, options, order in sections:
    print("l3roamd.%s=%s" % (name, kind))
    for option in order:
        print("l3roamd.%s.%s=%s" % (name, option, " ".join(quote(v) for v in options[option])))
EOF
}

# toml_is FILE JSON: FILE parses as TOML into exactly JSON (types included).
toml_is() {
	python3 - "$1" "$2" <<'EOF'
import json
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    got = tomllib.load(f)
want = json.loads(sys.argv[2])
got_text = json.dumps(got, sort_keys=True)
want_text = json.dumps(want, sort_keys=True)
if got_text != want_text:
    print("got:  " + got_text)
    print("want: " + want_text)
    sys.exit(1)
EOF
}

# lib SHELL SHOW_FILE TOML COMMAND...: runs COMMAND with config.sh sourced,
# under SHELL, reading SHOW_FILE as `uci show`, writing TOML.
lib() {
	_shell=$1
	_show=$2
	_toml=$3
	shift 3
	# $_shell unquoted: "busybox ash" is two words.
	# shellcheck disable=SC2086,SC2016
	L3R_UCI_SHOW=$_show L3R_TOML=$_toml L3R_BABELD_DIR=$WORK/babeld.d \
		L3R_BABELD_RELOAD=0 L3R_NO_SYSLOG=1 \
		$_shell -c '. "$1"; shift; "$@"' l3roamd-test "$LIB" "$@"
}

# generate SHELL UCI_FILE TOML: the translation as an init script runs it.
generate() {
	uci_show "$2" >"$WORK/show" || return 1
	lib "$1" "$WORK/show" "$3" l3roamd_generate
}

# directives FILE: the lines of a babeld configuration that are not comments.
directives() {
	sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1"
}

# inode FILE
inode() {
	# shellcheck disable=SC2012
	ls -i "$1" | awk '{ print $1 }'
}

# ----- sample configurations -----

# Every key, with values that need care: quotes, backslashes, a list of two,
# integers with leading zeros, a table by name, anonymous sections.
cat >"$WORK/full.uci" <<'EOF'
config runtime
	option socket_dir '/run/l3 roamd'
	option log_level 'debug'

config mesh 'mesh'
	option node_address 'fdff::1'
	list mesh_interface 'mesh0'
	list mesh_interface 'mesh-vpn'
	list mesh_interface_pattern 'wg_*'
	list client_interface 'br-client'
	list client_prefix 'fddd:1::/64'
	list client_prefix 'fddd:2::/64'
	option node_client_prefix 'fec0::/64'
	option next_node_address 'fe80::1'
	option next_node_mac '02:4e:4e:00:00:01'
	option intercom_port '5523'
	option data_port '05524'
	option intercom_auth 'require'
	option intercom_key '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'

config core 'core'
	option enabled '1'
	option socket "/tmp/it's \"core\"\\.sock"
	option tun_device 'l3roam0'
	option export_table 'main'
	option route_protocol '158'

config clientmon 'clientmon'
	option socket '/tmp/clientmon.sock'

config client_db 'client_db'
	option db_path '/tmp/l3roamd/client-db'

config ndproxy 'ndproxy'
	option enabled '0'

config prefixd 'prefixd'
	option valid_lifetime '2592000'
	option preferred_lifetime '0'
	option uplink 'wan'
	list announce '2001:db8:1::/64 256 wan6'
	list announce '2001:db8:2::/64'
	list ra_interface 'br-client'

config babeld 'babeld'
	option enabled '1'
EOF
FULL_JSON='{
 "runtime": {"socket_dir": "/run/l3 roamd", "log_level": "debug"},
 "mesh": {"node_address": "fdff::1", "mesh_interfaces": ["mesh0", "mesh-vpn"],
  "mesh_interface_patterns": ["wg_*"], "client_interfaces": ["br-client"], "client_prefixes": ["fddd:1::/64", "fddd:2::/64"],
  "node_client_prefix": "fec0::/64", "next_node_address": "fe80::1",
  "next_node_mac": "02:4e:4e:00:00:01", "intercom_port": 5523, "data_port": 5524,
  "intercom_auth": "require",
  "intercom_key": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
 "core": {"socket": "/tmp/it'"'"'s \"core\"\\.sock", "tun_device": "l3roam0",
  "export_table": 254, "route_protocol": 158},
 "clientmon": {"socket": "/tmp/clientmon.sock"},
 "client_db": {"db_path": "/tmp/l3roamd/client-db"},
 "prefixd": {"valid_lifetime": 2592000, "preferred_lifetime": 0,
  "ra_interfaces": ["br-client"], "uplink": "wan",
  "announce": [{"prefix": "2001:db8:1::/64", "metric": 256, "uplink": "wan6"},
   {"prefix": "2001:db8:2::/64", "metric": 0}]}
}'

# The shipped default, as installed.
DEFAULT_JSON='{
 "runtime": {"socket_dir": "/var/run/l3roamd", "log_level": "info"},
 "mesh": {"node_client_prefix": "fec0::/64", "next_node_address": "fe80::1"},
 "core": {"tun_device": "l3roam0", "export_table": 254, "route_protocol": 158},
 "client_db": {"db_path": "/tmp/l3roamd/client-db"}
}'

# The shipped default with every commented-out example option enabled.
sed -e 's/^\([[:space:]]*\)#option /\1option /' -e 's/^\([[:space:]]*\)#list /\1list /' \
	"$DEFAULT_CONFIG" >"$WORK/examples.uci"
EXAMPLES_JSON='{
 "runtime": {"socket_dir": "/var/run/l3roamd", "log_level": "info"},
 "mesh": {"node_address": "fdff::1", "mesh_interfaces": ["mesh0", "mesh-vpn"],
  "mesh_interface_patterns": ["wg_*"],
  "client_interfaces": ["br-client"], "client_prefixes": ["fddd:1::/64"],
  "node_client_prefix": "fec0::/64", "next_node_address": "fe80::1",
  "next_node_mac": "02:4e:4e:00:00:01", "intercom_port": 5523, "data_port": 5524,
  "intercom_auth": "off"},
 "core": {"socket": "/var/run/l3roamd/core.sock", "tun_device": "l3roam0",
  "export_table": 254, "route_protocol": 158, "handover_protocol": 159,
  "handover_ms": 5000, "host_route_metric": 32, "gone_grace_ms": 5000,
  "max_clients": 4096, "compat_socket": "/var/run/l3roamd.sock", "hold_time_ms": 5000,
  "reseek_interval_ms": 1000, "found_time_ms": 30000, "queue_per_destination": 64,
  "queue_packets": 1024, "queue_bytes": 1048576, "queue_destinations": 256,
  "unreachable_per_second": 10},
 "clientmon": {"socket": "/var/run/l3roamd/clientmon.sock"},
 "client_db": {"socket": "/var/run/l3roamd/client-db.sock", "db_path": "/tmp/l3roamd/client-db"},
 "ndproxy": {"socket": "/var/run/l3roamd/ndproxy.sock"},
 "prefixd": {"socket": "/var/run/l3roamd/prefixd.sock", "valid_lifetime": 5400,
  "preferred_lifetime": 2700, "dns_servers": ["2001:db8::53"], "max_prefixes": 2,
  "babel_socket": "/var/run/babeld.sock", "uplink": "wan",
  "announce": [{"prefix": "2001:db8:1::/64", "metric": 256}]}
}'

# ----- the shells -----

SHELLS=
for candidate in dash 'busybox ash' bash; do
	# shellcheck disable=SC2086
	if $candidate -c 'exit 0' >/dev/null 2>&1; then
		SHELLS="$SHELLS${SHELLS:+:}$candidate"
	else
		skip "translation under $candidate (not installed)"
	fi
done
[ -n "$SHELLS" ] || SHELLS='sh'

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import tomllib' 2>/dev/null; then
	fail "python3 with tomllib (3.11+) is needed to check the TOML"
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi

# ----- syntax and lint -----

for script in "$LIB" "$0"; do
	check "sh -n $(basename "$script")" sh -n "$script"
done
for service in $SERVICES; do
	check "sh -n init.d/$service" sh -n "$FILES/etc/init.d/$service"
	check "init.d/$service is executable" test -x "$FILES/etc/init.d/$service"
done
if command -v bash >/dev/null 2>&1; then
	for script in "$LIB" "$0"; do
		check "bash -n $(basename "$script")" bash -n "$script"
	done
fi
if command -v busybox >/dev/null 2>&1; then
	for service in $SERVICES; do
		check "busybox ash -n init.d/$service" busybox ash -n "$FILES/etc/init.d/$service"
	done
	check "busybox ash -n config.sh" busybox ash -n "$LIB"
fi
if command -v shellcheck >/dev/null 2>&1; then
	check "shellcheck config.sh (POSIX sh)" shellcheck -s sh "$LIB"
	check "shellcheck test-uci-to-toml.sh (POSIX sh)" shellcheck -s sh "$0"
	for service in $SERVICES; do
		# Sourced by /etc/rc.common, which provides the procd_* functions.
		check "shellcheck init.d/$service" shellcheck -s sh -x \
			-P "$FILES" "$FILES/etc/init.d/$service"
	done
else
	skip "shellcheck (not installed; apt-get install shellcheck)"
fi

# ----- translation, under every shell -----

IFS_SAVED=$IFS
IFS=:
# shellcheck disable=SC2086
set -- $SHELLS
IFS=$IFS_SAVED
for shell in "$@"; do
	tag="[$shell]"
	toml=$WORK/l3roamd.toml
	rm -rf "$toml" "$WORK/babeld.d"

	if out=$(generate "$shell" "$WORK/full.uci" "$toml" 2>&1); then
		check "$tag every key: TOML parses to the expected values and types" toml_is "$toml" "$FULL_JSON"
	else
		fail "$tag every key: translation failed" "$out"
	fi

	if out=$(generate "$shell" "$DEFAULT_CONFIG" "$toml" 2>&1); then
		check "$tag shipped default config" toml_is "$toml" "$DEFAULT_JSON"
	else
		fail "$tag shipped default config: translation failed" "$out"
	fi

	if out=$(generate "$shell" "$WORK/examples.uci" "$toml" 2>&1); then
		check "$tag shipped default config with all examples enabled" toml_is "$toml" "$EXAMPLES_JSON"
	else
		fail "$tag default config with all examples: translation failed" "$out"
	fi

	# babeld rules for the examples = the reference snippet, line for line.
	if [ -f "$WORK/babeld.d/l3roamd.conf" ]; then
		directives "$WORK/babeld.d/l3roamd.conf" >"$WORK/got.babeld"
		directives "$BABELD_REFERENCE" >"$WORK/want.babeld"
		check "$tag babeld rules match deploy/babeld/l3roamd.conf" \
			diff -u "$WORK/want.babeld" "$WORK/got.babeld"
	else
		fail "$tag babeld rules written to \$L3R_BABELD_DIR/l3roamd.conf"
	fi

	# An unchanged configuration leaves the file alone; a changed one
	# replaces it by rename, leaving no temporary file behind.
	before=$(inode "$toml")
	generate "$shell" "$WORK/examples.uci" "$toml" >/dev/null 2>&1
	check "$tag unchanged configuration: TOML not rewritten" test "$(inode "$toml")" = "$before"
	sed 's/l3roam0/l3roam1/' "$WORK/examples.uci" >"$WORK/changed.uci"
	generate "$shell" "$WORK/changed.uci" "$toml" >/dev/null 2>&1
	if grep -q '^tun_device = "l3roam1"$' "$toml"; then
		pass "$tag changed configuration: TOML replaced"
	else
		fail "$tag changed configuration: TOML replaced" "$(cat "$toml")"
	fi
	leftovers=$(find "$WORK" "$WORK/babeld.d" -maxdepth 1 -name '*.tmp.*')
	check "$tag no temporary files left" test -z "$leftovers"

	# Another table: babeld must import it.
	sed "s/option export_table '254'/option export_table '11'/" "$WORK/examples.uci" >"$WORK/table.uci"
	generate "$shell" "$WORK/table.uci" "$toml" >/dev/null 2>&1
	check "$tag export_table 11: babeld gets import-table 11" \
		grep -qx 'import-table 11' "$WORK/babeld.d/l3roamd.conf"
	check "$tag export_table 11: TOML integer" grep -qx 'export_table = 11' "$toml"

	# Another handover protocol: babeld's handover rule follows it.
	sed "s/option handover_protocol '159'/option handover_protocol '156'/" "$WORK/examples.uci" >"$WORK/handover.uci"
	generate "$shell" "$WORK/handover.uci" "$toml" >/dev/null 2>&1
	check "$tag handover_protocol 156: babeld's handover rule uses it" \
		grep -qx 'redistribute ip ::/0 eq 128 proto 156 metric 4096' "$WORK/babeld.d/l3roamd.conf"

	# babeld.enabled 0: our rules are removed.
	sed "/^config babeld/,\$ s/option enabled '1'/option enabled '0'/" "$WORK/examples.uci" >"$WORK/nobabel.uci"
	generate "$shell" "$WORK/nobabel.uci" "$toml" >/dev/null 2>&1
	check "$tag babeld.enabled 0: rules removed" test ! -e "$WORK/babeld.d/l3roamd.conf"

	# Bad configurations: refused, the option named, the old TOML kept.
	generate "$shell" "$WORK/examples.uci" "$toml" >/dev/null 2>&1
	cp "$toml" "$WORK/good.toml"
	# what|text the error must contain|section to put the line in (- : at the end)|line
	while IFS='|' read -r what needle section line; do
		# The line goes last in its section, so that it wins over the
		# option it may repeat, as in uci.
		awk -v section="$section" -v line="$line" '
			/^config / && inside { print line; inside = 0 }
			{ print }
			$0 == "config " section " \047" section "\047" { inside = 1 }
			END { if (inside || section == "-") print line }
		' "$WORK/examples.uci" >"$WORK/bad.uci"
		if out=$(generate "$shell" "$WORK/bad.uci" "$toml" 2>&1); then
			fail "$tag refuses $what" "translation succeeded: $(cat "$toml")"
		elif ! printf '%s' "$out" | grep -qF -- "$needle"; then
			fail "$tag refuses $what, naming '$needle'" "$out"
		elif ! cmp -s "$toml" "$WORK/good.toml"; then
			fail "$tag refuses $what and keeps the old TOML" "$(cat "$toml")"
		else
			pass "$tag refuses $what"
		fi
	done <<'EOF'
an unknown option in the babeld section|l3roamd.babeld.enable|babeld|	option enable '1'
a non-numeric integer|l3roamd.mesh.data_port|mesh|	option data_port '5524/udp'
a negative integer|l3roamd.core.route_protocol|core|	option route_protocol '-1'
an integer too long for any key|l3roamd.prefixd.valid_lifetime|prefixd|	option valid_lifetime '1234567890123456789'
a list for a single value|l3roamd.mesh.node_address|mesh|	list node_address 'fdff::2'
a table neither a number nor main/default|l3roamd.core.export_table|core|	option export_table 'local'
a control character|l3roamd.clientmon.socket|clientmon|	option socket 'a	b'
an unknown section type|unknown section type 'mseh'|-|config mseh 'x'
a second mesh section|a second 'mesh' section|-|config mesh 'other'
EOF

	# Options the key table does not know are passed on, by their looks.
	awk '
		{ print }
		$0 == "config core \047core\047" {
			print "	option some_new_count \047007\047"
			print "	option some_new_flag \047true\047"
			print "	option some_new_name \047eth0\047"
			print "	list some_new_list \047a b\047"
			print "	list some_new_list \0472\047"
		}
		$0 == "config ndproxy \047ndproxy\047" { print "	option seek_burst \04780\047" }
	' "$WORK/examples.uci" >"$WORK/new.uci"
	if out=$(generate "$shell" "$WORK/new.uci" "$toml" 2>&1); then
		check "$tag options the table does not know: passed on by their looks" python3 -c '
import sys, tomllib
t = tomllib.load(open(sys.argv[1], "rb"))
want = {"hold_time_ms": 5000, "some_new_count": 7, "some_new_flag": True,
        "some_new_name": "eth0", "some_new_list": ["a b", "2"]}
got = {k: t["core"].get(k) for k in want}
assert got == want and type(got["some_new_flag"]) is bool, got
assert t["ndproxy"]["seek_burst"] == 80, t["ndproxy"]
' "$toml"
		case "$out" in
		*l3roamd.core.some_new_count*) pass "$tag options the table does not know: a warning names them" ;;
		*) fail "$tag options the table does not know: a warning names them" "$out" ;;
		esac
		case "$out" in
		*hold_time_ms*) fail "$tag no warning for keys the table knows" "$out" ;;
		*) pass "$tag no warning for keys the table knows" ;;
		esac
	else
		fail "$tag options the table does not know: passed on" "$out"
	fi
	printf '%s\n' "l3roamd.core=core" "l3roamd.core.bad-name='1'" >"$WORK/name.show"
	if out=$(lib "$shell" "$WORK/name.show" "$toml" l3roamd_generate 2>&1); then
		fail "$tag refuses an option name TOML and the shell cannot take" "$(cat "$toml")"
	else
		case "$out" in
		*l3roamd.core.bad-name*) pass "$tag refuses an option name TOML and the shell cannot take" ;;
		*) fail "$tag refuses an option name TOML and the shell cannot take" "$out" ;;
		esac
	fi

	# Hand-written `uci show` lines: unquoted values, an unterminated quote.
	printf '%s\n' "l3roamd.mesh=mesh" "l3roamd.mesh.node_address=fdff::2" \
		"l3roamd.mesh.client_prefix='fddd:1::/64' fddd:3::/64" >"$WORK/plain.show"
	if lib "$shell" "$WORK/plain.show" "$toml" l3roamd_generate >/dev/null 2>&1; then
		check "$tag unquoted values in uci show text" toml_is "$toml" \
			'{"mesh": {"node_address": "fdff::2", "client_prefixes": ["fddd:1::/64", "fddd:3::/64"]}}'
	else
		fail "$tag unquoted values in uci show text"
	fi
	printf '%s\n' "l3roamd.mesh=mesh" "l3roamd.mesh.node_address='fdff::2" >"$WORK/open.show"
	if out=$(lib "$shell" "$WORK/open.show" "$toml" l3roamd_generate 2>&1); then
		fail "$tag refuses an unterminated quote"
	else
		case "$out" in
		*"unterminated quote"*) pass "$tag refuses an unterminated quote" ;;
		*) fail "$tag refuses an unterminated quote" "$out" ;;
		esac
	fi
done

# ----- through the uci command -----

# A stand-in for uci on PATH: `uci -q show l3roamd` and babeld's conf_dir.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/uci" <<EOF
#!/bin/sh
case "\$*" in
"-q show l3roamd") cat "$WORK/uci.show" ;;
"-q get babeld.@general[0].conf_dir") echo "$WORK/conf.d/" ;;
*) exit 1 ;;
esac
EOF
chmod +x "$WORK/bin/uci"
{
	cat "$WORK/examples.uci"
	# shellcheck disable=SC2016
	printf '%s\n' 'config clientmon' "	option socket '/tmp/\$(touch $WORK/pwned)\`touch $WORK/pwned\`'"
} | sed '/^config clientmon .clientmon./,/^$/d' >"$WORK/dollar.uci"
uci_show "$WORK/dollar.uci" >"$WORK/uci.show"
# shellcheck disable=SC2016
if out=$(PATH="$WORK/bin:$PATH" L3R_TOML=$WORK/via-uci.toml L3R_BABELD_RELOAD=0 \
	L3R_NO_SYSLOG=1 sh -c '. "$1"; l3roamd_generate' l3roamd-test "$LIB" 2>&1); then
	check "uci show l3roamd read through the uci command" \
		grep -qF "socket = \"/tmp/\$(touch $WORK/pwned)\`touch $WORK/pwned\`\"" "$WORK/via-uci.toml"
	check "values are data, never run: no \$(...) or \`...\` executed" test ! -e "$WORK/pwned"
	check "babeld rules go to babeld's conf_dir from uci" test -s "$WORK/conf.d/l3roamd.conf"
else
	fail "uci show l3roamd read through the uci command" "$out"
fi

# ----- init scripts with stub procd functions -----

# service SHELL SERVICE UCI_FILE FUNCTION: sources init.d/SERVICE as
# /etc/rc.common would and runs FUNCTION; procd calls are printed.
service() {
	uci_show "$3" >"$WORK/show" || return 1
	# shellcheck disable=SC2016,SC2086
	IPKG_INSTROOT=$FILES L3R_UCI_SHOW=$WORK/show L3R_TOML=$WORK/svc.toml \
		L3R_BABELD_DIR=$WORK/babeld.d L3R_BABELD_RELOAD=0 L3R_NO_SYSLOG=1 \
		L3R_SYNC_AT_START=0 $1 -c '
		procd_open_instance() { echo "open $*"; }
		procd_set_param() { echo "param $*"; }
		procd_close_instance() { echo "close"; }
		procd_add_reload_trigger() { echo "reload-trigger $*"; }
		procd_open_trigger() { echo "open-trigger"; }
		procd_add_raw_trigger() { echo "raw-trigger $*"; }
		procd_close_trigger() { echo "close-trigger"; }
		. "$1"
		echo "START=${START-} STOP=${STOP-} USE_PROCD=${USE_PROCD-}"
		"$2"' l3roamd-test "$FILES/etc/init.d/$2" "$4"
}

# Site values in a writable place (client-db creates the db directory).
sed -e "s|'/tmp/l3roamd/|'$WORK/db/|" "$WORK/examples.uci" >"$WORK/site.uci"
init_shell=${SHELLS%%:*}
for name in $DAEMONS; do
	out=$(service "$init_shell" "$name" "$WORK/site.uci" start_service 2>&1)
	expected="open $name
param command /usr/sbin/$name -c $WORK/svc.toml
param file $WORK/svc.toml
param respawn 3600 5 0
param stdout 1
param stderr 1
close"
	if [ "$(printf '%s\n' "$out" | sed '/^START=/d')" = "$expected" ]; then
		pass "init.d/$name: procd instance '$name -c TOML', respawn, logd"
	else
		fail "init.d/$name: procd instance" "$out"
	fi
	start=$(printf '%s\n' "$out" | sed -n 's/^START=\([0-9]*\) STOP=\([0-9]*\) USE_PROCD=1$/\1/p')
	stop=$(printf '%s\n' "$out" | sed -n 's/^START=\([0-9]*\) STOP=\([0-9]*\) USE_PROCD=1$/\2/p')
	if [ -n "$start" ] && [ "$start" -gt 70 ] && [ -n "$stop" ] && [ "$stop" -lt 90 ]; then
		pass "init.d/$name: USE_PROCD, START $start after babeld (70), STOP $stop before network (90)"
	else
		fail "init.d/$name: USE_PROCD=1, START after babeld (70), STOP before network (90)" "$out"
	fi
	case "$name" in
	l3roamd-core) core_start=$start ;;
	*) last_peer_start=$start ;;
	esac
	out=$(service "$init_shell" "$name" "$WORK/site.uci" service_triggers 2>&1)
	expected="reload-trigger l3roamd"
	if [ "$name" = l3roamd-core ]; then
		# And netifd's interface events (mesh.mesh_proto is set).
		expected="$expected
open-trigger
raw-trigger interface.* 0 /etc/init.d/l3roamd-core sync_meshifs
close-trigger"
	fi
	check "init.d/$name: reload trigger on /etc/config/l3roamd" \
		test "$(printf '%s\n' "$out" | grep -v '^START=')" = "$expected"
done
check "l3roamd-core starts after the four daemons it is the client of" \
	test "${core_start:-0}" -gt "${last_peer_start:-99}"
check "client-db: directory of db_path created" test -d "$WORK/db"

# ----- mesh interfaces at runtime: netifd's events to l3roamd ctl -----

# The shipped examples set mesh_proto 'gluon_mesh' (the trigger checked above).
sed "s/option mesh_proto 'gluon_mesh'/option mesh_proto 'gluon_mesh wireguard'/" \
	"$WORK/site.uci" >"$WORK/meshproto.uci"
sed "/option mesh_proto/d" "$WORK/site.uci" >"$WORK/nomesh.uci"
out=$(service "$init_shell" l3roamd-core "$WORK/nomesh.uci" service_triggers 2>&1)
check "init.d/l3roamd-core: no interface trigger without mesh.mesh_proto" \
	test "$(printf '%s\n' "$out" | grep -v '^START=')" = "reload-trigger l3roamd"
out=$(service "$init_shell" l3roamd-core "$WORK/meshproto.uci" service_triggers 2>&1)
expected="reload-trigger l3roamd
open-trigger
raw-trigger interface.* 0 /etc/init.d/l3roamd-core sync_meshifs
close-trigger"
if [ "$(printf '%s\n' "$out" | grep -v '^START=')" = "$expected" ]; then
	pass "init.d/l3roamd-core: with mesh.mesh_proto, netifd's interface events run sync_meshifs"
else
	fail "init.d/l3roamd-core: interface trigger" "$out"
fi
if generate "$init_shell" "$WORK/meshproto.uci" "$WORK/meshproto.toml" >/dev/null 2>&1 &&
	! grep -q mesh_proto "$WORK/meshproto.toml"; then
	pass "mesh.mesh_proto is the init script's, not written to the TOML"
else
	fail "mesh.mesh_proto kept out of the TOML" "$(cat "$WORK/meshproto.toml" 2>&1)"
fi

# Stand-ins: netifd's dump with two mesh links up (one of each proto), one
# down and a WAN; jsonfilter for the one expression used; l3roamd ctl that
# logs its calls and lists what core has (mesh0 configured; wg_old, vx_mesh,
# mesh-vpn and wg_1 at runtime).
mkdir -p "$WORK/fakebin" "$WORK/fakesbin"
cat >"$WORK/fakebin/ubus" <<'UBUS'
#!/bin/sh
[ "$*" = "call network.interface dump" ] || exit 1
cat <<'JSON'
{"interface": [
 {"interface": "mesh_vpn", "proto": "gluon_mesh", "up": true, "device": "mesh-vpn"},
 {"interface": "mesh_lan", "proto": "gluon_mesh", "up": false, "device": "vx_mesh"},
 {"interface": "wg_peer1", "proto": "wireguard", "up": true, "device": "wg_1"},
 {"interface": "wan", "proto": "dhcp", "up": true, "device": "eth1"}
]}
JSON
UBUS
cat >"$WORK/fakebin/jsonfilter" <<'JSONFILTER'
#!/bin/sh
[ "$1" = -e ] || exit 1
exec python3 -c '
import json, re, sys
m = re.fullmatch(r"@\.interface\[@\.proto=.(\w+). && @\.up=true\]\.device", sys.argv[1])
for i in json.load(sys.stdin)["interface"]:
    if m and i["proto"] == m.group(1) and i["up"]:
        print(i["device"])
' "$2"
JSONFILTER
cat >"$WORK/fakesbin/l3roamd" <<CTL
#!/bin/sh
echo "\$*" >>"$WORK/ctl.log"
case "\$4" in
get-meshifs) printf 'mesh0 present configured\nwg_old absent runtime\nvx_mesh present runtime\nmesh-vpn present runtime\nwg_1 present runtime\n' ;;
esac
CTL
chmod +x "$WORK/fakebin/ubus" "$WORK/fakebin/jsonfilter" "$WORK/fakesbin/l3roamd"
socket=/var/run/l3roamd/core.sock
expected="ctl -s $socket add-meshif mesh-vpn
ctl -s $socket add-meshif wg_1
ctl -s $socket get-meshifs
ctl -s $socket del-meshif wg_old
ctl -s $socket del-meshif vx_mesh"
IFS=:
# shellcheck disable=SC2086
set -- $SHELLS
IFS=$IFS_SAVED
for shell in "$@"; do
	uci_show "$WORK/meshproto.uci" >"$WORK/show"
	rm -f "$WORK/ctl.log"
	PATH="$WORK/fakebin:$PATH" L3R_BIN_DIR="$WORK/fakesbin" lib "$shell" "$WORK/show" \
		"$WORK/sync.toml" l3roamd_sync_mesh_interfaces >"$WORK/sync.out" 2>&1
	code=$?
	if [ "$code" -eq 0 ] && [ "$(cat "$WORK/ctl.log" 2>/dev/null)" = "$expected" ]; then
		pass "$shell: sync_meshifs adds the mesh links that are up, removes the runtime ones gone, keeps mesh0"
	else
		fail "$shell: sync_meshifs (exit $code)" "$(cat "$WORK/ctl.log" "$WORK/sync.out" 2>&1)"
	fi
done
uci_show "$WORK/nomesh.uci" >"$WORK/show"
rm -f "$WORK/ctl.log"
PATH="$WORK/fakebin:$PATH" L3R_BIN_DIR="$WORK/fakesbin" lib "$init_shell" "$WORK/show" \
	"$WORK/sync.toml" l3roamd_sync_mesh_interfaces >/dev/null 2>&1
check "sync_meshifs does nothing without mesh.mesh_proto" test ! -e "$WORK/ctl.log"
# After core's start: once it answers (the stand-in at once), one sync.
uci_show "$WORK/meshproto.uci" >"$WORK/show"
rm -f "$WORK/ctl.log"
PATH="$WORK/fakebin:$PATH" L3R_BIN_DIR="$WORK/fakesbin" lib "$init_shell" "$WORK/show" \
	"$WORK/sync.toml" l3roamd_sync_when_up 2 >"$WORK/sync.out" 2>&1
check "after core's start, the mesh links already up are synced once" \
	test "$(cat "$WORK/ctl.log" 2>/dev/null)" = "ctl -s $socket get-meshifs
$expected"
# A core that never answers: bounded, a warning, no changes.
printf '#!/bin/sh\necho "$*" >>"%s"\nexit 1\n' "$WORK/ctl.log" >"$WORK/fakesbin/l3roamd"
rm -f "$WORK/ctl.log"
PATH="$WORK/fakebin:$PATH" L3R_BIN_DIR="$WORK/fakesbin" lib "$init_shell" "$WORK/show" \
	"$WORK/sync.toml" l3roamd_sync_when_up 2 >"$WORK/sync.out" 2>&1
check "a core that does not answer is asked a bounded number of times" \
	test "$(wc -l <"$WORK/ctl.log")" -eq 2

out=$(service "$init_shell" ndproxy "$WORK/full.uci" start_service 2>&1)
case "$out" in
*open*) fail "init.d/ndproxy: not started when ndproxy.enabled is 0" "$out" ;;
*) pass "init.d/ndproxy: not started when ndproxy.enabled is 0" ;;
esac
if out=$(service "$init_shell" clientmon "$DEFAULT_CONFIG" start_service 2>&1); then
	case "$out" in
	*open*) fail "init.d/clientmon: not started without mesh.node_address" "$out" ;;
	*node_address*) pass "init.d/clientmon: not started without mesh.node_address (and says so)" ;;
	*) fail "init.d/clientmon: says why it does not start" "$out" ;;
	esac
else
	fail "init.d/clientmon: an unconfigured node is not an error" "$out"
fi
printf '%s\n' "config core 'x'" "	option export_table 'lots'" >"$WORK/typo.uci"
rm -f "$WORK/svc.toml"
if out=$(service "$init_shell" l3roamd-core "$WORK/typo.uci" start_service 2>&1); then
	fail "init.d/l3roamd-core: start fails on a bad configuration" "$out"
else
	case "$out" in
	*open*) fail "init.d/l3roamd-core: nothing started on a bad configuration at boot" "$out" ;;
	*export_table*) pass "init.d/l3roamd-core: start fails on a bad configuration at boot, naming the option" ;;
	*) fail "init.d/l3roamd-core: names the bad option" "$out" ;;
	esac
fi
# A bad edit while running: the instance stays as it was, on the old TOML.
service "$init_shell" l3roamd-core "$WORK/site.uci" start_service >"$WORK/good.out" 2>&1
cp "$WORK/svc.toml" "$WORK/svc.good"
service "$init_shell" l3roamd-core "$WORK/typo.uci" start_service >"$WORK/typo.out" 2>&1
if ! grep -q export_table "$WORK/typo.out"; then
	fail "init.d/l3roamd-core: a bad edit is reported" "$(cat "$WORK/typo.out")"
elif [ "$(grep -v '^l3roamd' "$WORK/typo.out")" != "$(cat "$WORK/good.out")" ] ||
	! cmp -s "$WORK/svc.toml" "$WORK/svc.good"; then
	fail "init.d/l3roamd-core: a bad edit keeps the running instance and its TOML" "$(cat "$WORK/typo.out")"
else
	pass "init.d/l3roamd-core: a bad edit is reported and keeps the running instance and its TOML"
fi
rm -rf "$WORK/babeld.d"
out=$(service "$init_shell" l3roamd-babeld "$WORK/site.uci" boot 2>&1)
case "$out" in
*START=65\ *) pass "init.d/l3roamd-babeld: START 65, before babeld (70)" ;;
*) fail "init.d/l3roamd-babeld: START before babeld (70)" "$out" ;;
esac
check "init.d/l3roamd-babeld: boot writes the babeld rules" test -s "$WORK/babeld.d/l3roamd.conf"

# ----- the real daemons read the generated TOML -----

# A binary of the workspace counts only if no source is newer: a stale one
# may lack keys the sources (and so this script) already have.
bin=${L3R_TEST_BIN:-}
stale=
if [ -z "$bin" ]; then
	for candidate in "$ROOT/target/debug/l3roamd" "$ROOT/target/release/l3roamd"; do
		[ -x "$candidate" ] || continue
		if [ -n "$(find "$ROOT/crates" "$ROOT/proto" "$ROOT/Cargo.lock" -newer "$candidate" \
			-type f 2>/dev/null | head -n 1)" ]; then
			stale="$stale $candidate"
			continue
		fi
		bin=$candidate
		break
	done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	skip "daemons accept the generated TOML (no up-to-date l3roamd binary${stale:+, stale:$stale}; cargo build -p l3roamd or set L3R_TEST_BIN)"
elif ! command -v timeout >/dev/null 2>&1 || ! unshare -n true 2>/dev/null; then
	skip "daemons accept the generated TOML (needs timeout and unshare -n, as root)"
else
	sed -e "s|'/var/run/l3roamd|'$WORK/run|" -e "s|'/tmp/l3roamd/|'$WORK/db/|" \
		"$WORK/examples.uci" >"$WORK/daemons.uci"
	generate "$init_shell" "$WORK/daemons.uci" "$WORK/daemons.toml" >/dev/null 2>&1
	# The links the package installs: the binary dispatches on its name.
	mkdir -p "$WORK/sbin"
	for name in $DAEMONS; do
		ln -sf "$bin" "$WORK/sbin/$name"
	done
	for name in $DAEMONS; do
		# Config errors end a daemon at once with exit code 78; a good
		# configuration keeps it running until timeout stops it.
		# A clean environment, as procd gives: the daemons take every
		# L3ROAMD_* variable for configuration.
		env -i PATH="$PATH" timeout -s TERM 3 unshare -n "$WORK/sbin/$name" \
			-c "$WORK/daemons.toml" >"$WORK/$name.log" 2>&1
		code=$?
		if [ "$code" -ne 78 ] && ! grep -q 'configuration error' "$WORK/$name.log"; then
			pass "$name accepts the generated TOML (exit $code)"
		else
			fail "$name accepts the generated TOML (exit $code)" "$(cat "$WORK/$name.log")"
		fi
	done
	# And a value the daemon rejects is reported against its TOML key.
	sed "s/option route_protocol '158'/option route_protocol '42'/" "$WORK/daemons.uci" >"$WORK/proto.uci"
	generate "$init_shell" "$WORK/proto.uci" "$WORK/proto.toml" >/dev/null 2>&1
	env -i PATH="$PATH" timeout -s TERM 3 unshare -n "$WORK/sbin/l3roamd-core" \
		-c "$WORK/proto.toml" >"$WORK/proto.log" 2>&1
	code=$?
	if [ "$code" -eq 78 ] && grep -q 'core.route_protocol' "$WORK/proto.log"; then
		pass "l3roamd-core rejects route_protocol 42 from UCI, naming core.route_protocol"
	else
		fail "l3roamd-core rejects route_protocol 42 (exit $code)" "$(cat "$WORK/proto.log")"
	fi
	# Signing without a key: every daemon refuses, naming mesh.intercom_key.
	sed "s/option intercom_auth 'off'/option intercom_auth 'sign'/" "$WORK/daemons.uci" >"$WORK/auth.uci"
	generate "$init_shell" "$WORK/auth.uci" "$WORK/auth.toml" >/dev/null 2>&1
	env -i PATH="$PATH" timeout -s TERM 3 unshare -n "$WORK/sbin/ndproxy" \
		-c "$WORK/auth.toml" >"$WORK/auth.log" 2>&1
	code=$?
	if [ "$code" -eq 78 ] && grep -q 'mesh.intercom_key' "$WORK/auth.log"; then
		pass "ndproxy refuses intercom_auth 'sign' without a key, naming mesh.intercom_key"
	else
		fail "ndproxy refuses intercom_auth 'sign' without a key (exit $code)" "$(cat "$WORK/auth.log")"
	fi
	# A typo the script passes on: the daemon names it.
	sed "s/option tun_device 'l3roam0'/option tun_devcie 'l3roam0'/" "$WORK/daemons.uci" >"$WORK/typo.uci"
	generate "$init_shell" "$WORK/typo.uci" "$WORK/typo.toml" >/dev/null 2>&1
	env -i PATH="$PATH" timeout -s TERM 3 unshare -n "$WORK/sbin/l3roamd-core" \
		-c "$WORK/typo.toml" >"$WORK/typo.log" 2>&1
	code=$?
	if [ "$code" -eq 78 ] && grep -q 'core.tun_devcie' "$WORK/typo.log"; then
		pass "l3roamd-core rejects the typo tun_devcie passed on from UCI, naming core.tun_devcie"
	else
		fail "l3roamd-core rejects tun_devcie (exit $code)" "$(cat "$WORK/typo.log")"
	fi
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
