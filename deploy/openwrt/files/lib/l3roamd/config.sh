# l3roamd: translate the UCI configuration /etc/config/l3roamd into the TOML
# file the five daemons read (/var/etc/l3roamd.toml), write babeld's
# redistribute rules for our routes, and start a daemon under procd.
#
# Sourced by /etc/init.d/{l3roamd-core,clientmon,client-db,ndproxy,prefixd}
# and /etc/init.d/l3roamd-babeld. POSIX sh (busybox ash on OpenWrt): no
# `local`, so every helper variable carries the _l3r_ prefix.
#
# The input is the text of `uci show l3roamd`, one line per section or option:
#
#   l3roamd.mesh=mesh
#   l3roamd.mesh.node_address='fdff::1'
#   l3roamd.mesh.mesh_interface='mesh0' 'mesh1'
#
# Values are shell-quoted by uci ('...' with '\'' for a quote); a list is its
# items side by side. Sections are recognised by their type, not their name,
# so `config mesh` without a name works as well as `config mesh 'mesh'`.
#
# Overridable for tests and special set-ups (set before sourcing or calling):
#   L3R_TOML           the TOML file to write    [/var/etc/l3roamd.toml]
#   L3R_UCI_SHOW       read this file instead of running `uci show l3roamd`
#   L3R_BIN_DIR        where the daemons' links live          [/usr/sbin]
#   L3R_BABELD_DIR     babeld's conf_dir [babeld.@general[0].conf_dir or /tmp/babeld.d]
#   L3R_BABELD_RELOAD  0: never reload babeld after changing the snippet
#   L3R_NO_SYSLOG      1: report to stderr only, not through logger
#   L3R_UBUS           the ubus command (mesh interface sync)          [ubus]
# (Not L3ROAMD_*: the daemons read every L3ROAMD_* environment variable as a
# configuration key, and refuse unknown ones.)

: "${L3R_TOML:=/var/etc/l3roamd.toml}"
: "${L3R_BIN_DIR:=/usr/sbin}"
: "${L3R_BABELD_RELOAD:=1}"

# procd respawn: a run shorter than THRESHOLD seconds counts as a crash; wait
# TIMEOUT seconds before each restart; give up after RETRY crashes in a row
# (0: never give up, so a node whose interfaces come up late, or whose peer
# daemon is being upgraded, keeps trying instead of staying dead until reboot).
L3R_RESPAWN_THRESHOLD=3600
L3R_RESPAWN_TIMEOUT=5
L3R_RESPAWN_RETRY=0

# The keys of the daemons' TOML, in output order, as section:key:kind.
# kind: str (quoted string), int (integer), table (integer, or main/default),
# list (array of strings, from a UCI list named in the singular),
# announce (array of tables, from `list announce 'PREFIX [METRIC [UPLINK]]'`).
# An option of a TOML section that is not here is passed on with a warning
# (a number as an integer, true/false as a boolean, anything else as a
# string), so a key new in a daemon can be set before this table knows it;
# the daemon refuses it if it is no key of its own, naming it.
_L3R_TOML_KEYS='
runtime:socket_dir:str
runtime:log_level:str
runtime:socket_group:str
mesh:node_address:str
mesh:mesh_interfaces:list
mesh:mesh_interface_patterns:list
mesh:client_interfaces:list
mesh:client_prefixes:list
mesh:node_client_prefix:str
mesh:next_node_address:str
mesh:next_node_mac:str
mesh:next_node_routable_address:str
mesh:intercom_port:int
mesh:data_port:int
mesh:intercom_auth:str
mesh:intercom_key:str
mesh:intercom_key_file:str
core:socket:str
core:tun_device:str
core:export_table:table
core:route_protocol:int
core:handover_protocol:int
core:seek_protocol:int
core:host_route_metric:int
core:hold_time_ms:int
core:reseek_interval_ms:int
core:found_time_ms:int
core:queue_per_destination:int
core:queue_packets:int
core:queue_bytes:int
core:queue_destinations:int
core:unreachable_per_second:int
core:handover_ms:int
core:gone_grace_ms:int
core:max_clients:int
core:compat_socket:str
clientmon:socket:str
client_db:socket:str
client_db:db_path:str
ndproxy:socket:str
ndproxy:seeks_per_second:int
ndproxy:seek_burst:int
ndproxy:seek_min_interval_ms:int
ndproxy:seek_max_interval_ms:int
ndproxy:mesh_solicits_per_second:int
ndproxy:mesh_solicit_burst:int
ndproxy:mesh_forwards_per_second:int
ndproxy:mesh_forward_burst:int
ndproxy:seen_window_ms:int
ndproxy:seen_capacity:int
ndproxy:answer_window_ms:int
ndproxy:max_sought:int
ndproxy:found_keep_ms:int
ndproxy:max_found:int
prefixd:socket:str
prefixd:valid_lifetime:int
prefixd:preferred_lifetime:int
prefixd:ra_interfaces:list
prefixd:router_lifetime:int
prefixd:mtu:int
prefixd:dns_servers:list
prefixd:dns_lifetime:int
prefixd:max_prefixes:int
prefixd:min_gateways:int
prefixd:metric_margin:int
prefixd:switch_margin:int
prefixd:hold_down:int
prefixd:babel_socket:str
prefixd:babel_port:int
prefixd:uplink:str
prefixd:route_protocol:int
prefixd:announce:announce
'
# Options the init scripts read themselves; never written to the TOML.
_L3R_INIT_KEYS='
mesh:mesh_proto
core:enabled
clientmon:enabled
client_db:enabled
ndproxy:enabled
prefixd:enabled
babeld:enabled
'
_L3R_SECTIONS='runtime mesh core clientmon client_db ndproxy prefixd'

# ----- reporting -----

# _l3r_log LEVEL MESSAGE: to syslog (logread) and stderr.
_l3r_log() {
	if [ "${L3R_NO_SYSLOG:-0}" != 1 ] && command -v logger >/dev/null 2>&1; then
		logger -s -t l3roamd -p "daemon.$1" "$2"
	else
		printf 'l3roamd: %s\n' "$2" >&2
	fi
}

_l3r_error() {
	_l3r_log err "$1"
	_l3r_failed=1
}

# ----- the key table -----

# _l3r_lookup TYPE OPTION: sets _l3r_key (the TOML key or init option) and
# _l3r_kind (str, int, table, list, init, or auto for an option of a TOML
# section this table does not know); fails for an option it cannot take.
_l3r_lookup() {
	_l3r_key=$2
	case "$1:$2" in
	mesh:mesh_interface) _l3r_key=mesh_interfaces ;;
	mesh:mesh_interface_pattern) _l3r_key=mesh_interface_patterns ;;
	mesh:client_interface) _l3r_key=client_interfaces ;;
	mesh:client_prefix) _l3r_key=client_prefixes ;;
	prefixd:ra_interface) _l3r_key=ra_interfaces ;;
	prefixd:dns_server) _l3r_key=dns_servers ;;
	esac
	for _l3r_entry in $_L3R_TOML_KEYS; do
		case "$_l3r_entry" in
		"$1:$_l3r_key":*)
			_l3r_kind=${_l3r_entry##*:}
			return 0
			;;
		esac
	done
	for _l3r_entry in $_L3R_INIT_KEYS; do
		if [ "$_l3r_entry" = "$1:$_l3r_key" ]; then
			_l3r_kind=init
			return 0
		fi
	done
	# Passed on only if it can be a TOML bare key and a shell name.
	case "$1:$2" in
	babeld:* | *:*[!A-Za-z0-9_]* | *:) return 1 ;;
	esac
	_l3r_kind=auto
	return 0
}

# ----- parsing `uci show` -----

# _l3r_reset: forgets everything parsed before.
_l3r_reset() {
	for _l3r_entry in $_L3R_TOML_KEYS $_L3R_INIT_KEYS ${_l3r_auto:-}; do
		_l3r_s=${_l3r_entry%%:*}
		_l3r_k=${_l3r_entry#*:}
		_l3r_k=${_l3r_k%%:*}
		unset "_l3r_v_${_l3r_s}_${_l3r_k}" "_l3r_r_${_l3r_s}_${_l3r_k}" \
			"_l3r_one_${_l3r_s}_${_l3r_k}" "_l3r_n_${_l3r_s}_${_l3r_k}"
	done
	_l3r_auto=
	_l3r_failed=0
}

# _l3r_toml_string TEXT: sets _l3r_str to TEXT as a TOML basic string.
_l3r_toml_string() {
	_l3r_in=$1
	_l3r_str=
	while :; do
		case "$_l3r_in" in
		*[\\\"]*)
			_l3r_pre=${_l3r_in%%[\\\"]*}
			_l3r_in=${_l3r_in#"$_l3r_pre"}
			_l3r_str="$_l3r_str$_l3r_pre\\${_l3r_in%"${_l3r_in#?}"}"
			_l3r_in=${_l3r_in#?}
			;;
		*)
			_l3r_str="\"$_l3r_str$_l3r_in\""
			return 0
			;;
		esac
	done
}

# _l3r_store TYPE KEY KIND ITEM NAME: records one value of option NAME.
_l3r_store() {
	case "$4" in
	*[[:cntrl:]]*)
		_l3r_error "$5: control characters are not allowed"
		return 1
		;;
	esac
	eval "_l3r_old=\${_l3r_r_$1_$2-}"
	eval "_l3r_had=\${_l3r_r_$1_$2+set}"
	case "$3" in
	list | auto)
		_l3r_toml_string "$4"
		eval "_l3r_v_$1_$2=\"\${_l3r_v_$1_$2:+\$_l3r_v_$1_$2, }\$_l3r_str\""
		eval "_l3r_r_$1_$2=\"\${_l3r_old:+\$_l3r_old }\$4\""
		if [ "$3" = auto ]; then
			# Rendered by l3roamd_render_toml: one item by its looks,
			# several as an array of strings.
			if [ -z "$_l3r_had" ]; then
				_l3r_auto="$_l3r_auto $1:$2"
				eval "_l3r_one_$1_$2=\$4"
			fi
			eval "_l3r_n_$1_$2=\$((\${_l3r_n_$1_$2:-0} + 1))"
		fi
		return 0
		;;
	esac
	if [ "$3" = announce ]; then
		# PREFIX [METRIC [UPLINK]]: one announcement as a TOML inline
		# table; prefixd checks the values and names the key.
		_l3r_a_extra=
		read -r _l3r_a_prefix _l3r_a_metric _l3r_a_uplink _l3r_a_extra <<-EOF
			$4
		EOF
		if ! _l3r_prefix_ok "$_l3r_a_prefix" || [ -n "$_l3r_a_extra" ]; then
			_l3r_error "$5: '$4' is not 'PREFIX [METRIC [UPLINK]]'"
			return 1
		fi
		case "${_l3r_a_metric:-0}" in
		*[!0-9]* | ??????????*)
			_l3r_error "$5: metric '$_l3r_a_metric' is not a number"
			return 1
			;;
		esac
		_l3r_str="{ prefix = \"$_l3r_a_prefix\", metric = $((${_l3r_a_metric:-0}))"
		if [ -n "$_l3r_a_uplink" ]; then
			_l3r_a_table=$_l3r_str
			_l3r_toml_string "$_l3r_a_uplink"
			_l3r_str="$_l3r_a_table, uplink = $_l3r_str"
		fi
		_l3r_str="$_l3r_str }"
		eval "_l3r_v_$1_$2=\"\${_l3r_v_$1_$2:+\$_l3r_v_$1_$2, }\$_l3r_str\""
		eval "_l3r_r_$1_$2=\"\${_l3r_old:+\$_l3r_old }\$4\""
		return 0
	fi
	if [ -n "$_l3r_had" ]; then
		_l3r_error "$5: one value expected, got a list"
		return 1
	fi
	case "$3" in
	str)
		_l3r_toml_string "$4"
		eval "_l3r_v_$1_$2=\$_l3r_str"
		;;
	int | table)
		_l3r_num=$4
		if [ "$3" = table ]; then
			case "$4" in
			main) _l3r_num=254 ;;
			default) _l3r_num=253 ;;
			esac
		fi
		case "$_l3r_num" in
		'' | *[!0-9]*)
			_l3r_error "$5: '$4' is not a number"
			return 1
			;;
		???????????????????*)
			# 19 digits or more: beyond any key (and TOML's 64 bits).
			_l3r_error "$5: $4 is out of range"
			return 1
			;;
		esac
		# TOML forbids leading zeros.
		while :; do
			case "$_l3r_num" in
			0?*) _l3r_num=${_l3r_num#0} ;;
			*) break ;;
			esac
		done
		eval "_l3r_v_$1_$2=\$_l3r_num"
		set -- "$1" "$2" "$3" "$_l3r_num" "$5"
		;;
	init)
		;;
	esac
	eval "_l3r_r_$1_$2=\$4"
}

# _l3r_items VALUE TYPE KEY KIND NAME: splits a uci-quoted VALUE into its
# items and stores each.
_l3r_items() {
	_l3r_rest=$1
	while [ -n "$_l3r_rest" ]; do
		case "$_l3r_rest" in
		' '*)
			_l3r_rest=${_l3r_rest#' '}
			continue
			;;
		esac
		_l3r_item=
		while :; do
			case "$_l3r_rest" in
			"'"*)
				_l3r_rest=${_l3r_rest#\'}
				case "$_l3r_rest" in
				*"'"*) ;;
				*)
					_l3r_error "$5: unterminated quote"
					return 1
					;;
				esac
				_l3r_item=$_l3r_item${_l3r_rest%%\'*}
				_l3r_rest=${_l3r_rest#*\'}
				;;
			"\\'"*)
				_l3r_item="$_l3r_item'"
				_l3r_rest=${_l3r_rest#??}
				;;
			'' | ' '*)
				break
				;;
			*)
				# Unquoted text, as a hand-written file may have it.
				_l3r_chunk=${_l3r_rest%%[\' \\]*}
				[ -n "$_l3r_chunk" ] || _l3r_chunk=${_l3r_rest%"${_l3r_rest#?}"}
				_l3r_item=$_l3r_item$_l3r_chunk
				_l3r_rest=${_l3r_rest#"$_l3r_chunk"}
				;;
			esac
		done
		_l3r_store "$2" "$3" "$4" "$_l3r_item" "$5" || return 1
	done
}

# l3roamd_parse_uci: reads `uci show l3roamd` text on standard input and
# remembers the values (read them with l3roamd_get). Reports every bad line
# and fails if there was one.
l3roamd_parse_uci() {
	_l3r_reset
	_l3r_cur_name=
	_l3r_cur_type=
	_l3r_seen=' '
	while IFS= read -r _l3r_line || [ -n "$_l3r_line" ]; do
		case "$_l3r_line" in
		'' | '#'*) continue ;;
		l3roamd.*=*) ;;
		*)
			_l3r_error "not a line of 'uci show l3roamd': $_l3r_line"
			continue
			;;
		esac
		_l3r_lhs=${_l3r_line%%=*}
		_l3r_lhs=${_l3r_lhs#l3roamd.}
		_l3r_val=${_l3r_line#*=}
		case "$_l3r_lhs" in
		*.*) ;;
		*)
			# A section: l3roamd.NAME=TYPE
			_l3r_cur_name=$_l3r_lhs
			_l3r_cur_type=
			_l3r_type=${_l3r_val#\'}
			_l3r_type=${_l3r_type%\'}
			case " $_L3R_SECTIONS babeld " in
			*" $_l3r_type "*) ;;
			*)
				_l3r_error "l3roamd.$_l3r_cur_name: unknown section type '$_l3r_type' (known: $_L3R_SECTIONS babeld)"
				continue
				;;
			esac
			case "$_l3r_seen" in
			*" $_l3r_type "*)
				_l3r_error "l3roamd.$_l3r_cur_name: a second '$_l3r_type' section (only one is allowed)"
				continue
				;;
			esac
			_l3r_seen="$_l3r_seen$_l3r_type "
			_l3r_cur_type=$_l3r_type
			continue
			;;
		esac
		# An option: l3roamd.NAME.OPTION=VALUE
		_l3r_name=${_l3r_lhs%%.*}
		_l3r_opt=${_l3r_lhs#*.}
		if [ "$_l3r_name" != "$_l3r_cur_name" ]; then
			_l3r_error "l3roamd.$_l3r_lhs: option outside its section"
			continue
		fi
		# Options of a rejected section were reported with the section.
		[ -n "$_l3r_cur_type" ] || continue
		if ! _l3r_lookup "$_l3r_cur_type" "$_l3r_opt"; then
			_l3r_error "l3roamd.$_l3r_lhs: unknown option '$_l3r_opt' in a '$_l3r_cur_type' section"
			continue
		fi
		if [ "$_l3r_kind" = auto ]; then
			_l3r_log warning "l3roamd.$_l3r_lhs: not a key this script knows; passed on as $_l3r_cur_type.$_l3r_key (the daemon refuses it if it is unknown there)"
		fi
		_l3r_items "$_l3r_val" "$_l3r_cur_type" "$_l3r_key" "$_l3r_kind" "l3roamd.$_l3r_lhs" || continue
	done
	return "$_l3r_failed"
}

# l3roamd_get SECTION KEY: prints the value parsed for SECTION.KEY (TOML
# key names; list items separated by spaces); nothing if unset.
l3roamd_get() {
	eval "printf '%s' \"\${_l3r_r_$1_$2-}\""
}

# l3roamd_enabled SECTION: false if l3roamd.SECTION.enabled is 0/false/no/off.
l3roamd_enabled() {
	case "$(l3roamd_get "$1" enabled)" in
	0 | false | no | off | disabled) return 1 ;;
	*) return 0 ;;
	esac
}

# l3roamd_load: parses the UCI configuration (or $L3R_UCI_SHOW).
l3roamd_load() {
	if [ -n "${L3R_UCI_SHOW:-}" ]; then
		l3roamd_parse_uci <"$L3R_UCI_SHOW"
	else
		_l3r_show=$(uci -q show l3roamd)
		l3roamd_parse_uci <<EOF
$_l3r_show
EOF
	fi
}

# ----- the TOML -----

# _l3r_emit KEY VALUE: prints a TOML line, after the section header if it
# is the first line of the section.
_l3r_emit() {
	if [ -n "$_l3r_header" ]; then
		printf '\n%s\n' "$_l3r_header"
		_l3r_header=
	fi
	printf '%s = %s\n' "$1" "$2"
}

# _l3r_guess TEXT: sets _l3r_value to TEXT as a TOML integer if it is a
# number, a boolean if it is true or false, else a string.
_l3r_guess() {
	case "$1" in
	true | false)
		_l3r_value=$1
		;;
	'' | *[!0-9]* | ???????????????????*)
		_l3r_toml_string "$1"
		_l3r_value=$_l3r_str
		;;
	*)
		_l3r_value=$1
		while :; do
			case "$_l3r_value" in
			0?*) _l3r_value=${_l3r_value#0} ;;
			*) break ;;
			esac
		done
		;;
	esac
}

# l3roamd_render_toml: prints the TOML of what l3roamd_load parsed.
l3roamd_render_toml() {
	echo "# Written by /lib/l3roamd/config.sh from /etc/config/l3roamd; changes here are lost."
	echo "# Edit the UCI configuration instead: uci set l3roamd.mesh.node_address=...; uci commit; reload_config"
	for _l3r_section in $_L3R_SECTIONS; do
		_l3r_header="[$_l3r_section]"
		for _l3r_entry in $_L3R_TOML_KEYS; do
			case "$_l3r_entry" in
			"$_l3r_section":*) ;;
			*) continue ;;
			esac
			_l3r_k=${_l3r_entry#*:}
			_l3r_kind=${_l3r_k#*:}
			_l3r_k=${_l3r_k%%:*}
			eval "_l3r_isset=\${_l3r_v_${_l3r_section}_${_l3r_k}+set}"
			[ -n "$_l3r_isset" ] || continue
			_l3r_value=
			eval "_l3r_value=\$_l3r_v_${_l3r_section}_${_l3r_k}"
			case "$_l3r_kind" in
			list | announce) _l3r_value="[$_l3r_value]" ;;
			esac
			_l3r_emit "$_l3r_k" "$_l3r_value"
		done
		for _l3r_entry in $_l3r_auto; do
			case "$_l3r_entry" in
			"$_l3r_section":*) ;;
			*) continue ;;
			esac
			_l3r_k=${_l3r_entry#*:}
			_l3r_n=
			eval "_l3r_n=\$_l3r_n_${_l3r_section}_${_l3r_k}"
			if [ "$_l3r_n" -gt 1 ]; then
				eval "_l3r_value=\"[\$_l3r_v_${_l3r_section}_${_l3r_k}]\""
			else
				eval "_l3r_guess \"\$_l3r_one_${_l3r_section}_${_l3r_k}\""
			fi
			_l3r_emit "$_l3r_k" "$_l3r_value"
		done
	done
}

# _l3r_install TMP FILE: moves TMP over FILE unless both are equal; sets
# _l3r_changed to 1 if FILE changed.
_l3r_install() {
	_l3r_changed=0
	if [ -f "$2" ] && command -v cmp >/dev/null 2>&1 && cmp -s "$1" "$2"; then
		rm -f "$1"
		return 0
	fi
	if ! mv -f "$1" "$2"; then
		rm -f "$1"
		_l3r_log err "cannot write $2"
		return 1
	fi
	_l3r_changed=1
}

# l3roamd_write_toml [FILE]: writes the TOML to FILE [$L3R_TOML]
# atomically (a temporary file in the same directory, then mv).
l3roamd_write_toml() {
	_l3r_file=${1:-$L3R_TOML}
	case "$_l3r_file" in
	*/*) mkdir -p "${_l3r_file%/*}" || return 1 ;;
	esac
	_l3r_tmp="$_l3r_file.tmp.$$"
	if ! l3roamd_render_toml >"$_l3r_tmp"; then
		rm -f "$_l3r_tmp"
		_l3r_log err "cannot write $_l3r_tmp"
		return 1
	fi
	_l3r_install "$_l3r_tmp" "$_l3r_file"
}

# ----- the babeld snippet -----

# _l3r_prefix_ok TEXT: an IPv6 address or prefix, nothing babeld could take
# for another token.
_l3r_prefix_ok() {
	case "$1" in
	'' | *[!0-9A-Fa-f:./]*) return 1 ;;
	esac
	return 0
}

# l3roamd_render_babeld: prints babeld's rules for our routes: the /128s
# inside the client prefixes and the node-client prefix, never the /64s
# themselves. deploy/babeld/l3roamd.conf in the source explains each line.
l3roamd_render_babeld() {
	_l3r_ncp=$(l3roamd_get mesh node_client_prefix)
	_l3r_ncp=${_l3r_ncp:-fec0::/64}
	_l3r_table=$(l3roamd_get core export_table)
	_l3r_handover=$(l3roamd_get core handover_protocol)
	_l3r_handover=${_l3r_handover:-159}
	_l3r_proto=$(l3roamd_get core route_protocol)
	_l3r_proto=${_l3r_proto:-158}
	_l3r_seek=$(l3roamd_get core seek_protocol)
	_l3r_seek=${_l3r_seek:-157}
	_l3r_gwproto=$(l3roamd_get prefixd route_protocol)
	_l3r_gwproto=${_l3r_gwproto:-160}
	for _l3r_n in "$_l3r_handover" "$_l3r_proto" "$_l3r_seek" "$_l3r_gwproto"; do
		case "$_l3r_n" in
		'' | *[!0-9]*)
			_l3r_log err "'$_l3r_n' is not a route protocol number; not writing babeld rules"
			return 1
			;;
		esac
	done
	_l3r_node=$(l3roamd_get mesh node_address)
	_l3r_prefixes=$(l3roamd_get mesh client_prefixes)
	for _l3r_p in $_l3r_prefixes $_l3r_ncp $_l3r_node; do
		if ! _l3r_prefix_ok "$_l3r_p"; then
			_l3r_log err "'$_l3r_p' is not an IPv6 prefix; not writing babeld rules"
			return 1
		fi
	done
	echo "# Written by /lib/l3roamd/config.sh from /etc/config/l3roamd; changes here are lost."
	echo "# /usr/share/l3roamd/babeld.conf explains each line."
	echo "ipv6-subtrees true"
	echo "reflect-kernel-metric true"
	echo "smoothing-half-life 0"
	echo "default split-horizon false"
	if [ -n "$_l3r_table" ] && [ "$_l3r_table" != 254 ]; then
		echo "import-table $_l3r_table"
	fi
	echo "redistribute ip ::/0 eq 128 proto $_l3r_handover metric 4096"
	echo "redistribute ip ::/0 eq 128 proto $_l3r_proto allow"
	echo "redistribute proto $_l3r_proto deny"
	echo "redistribute proto $_l3r_handover deny"
	echo "redistribute proto $_l3r_seek deny"
	_l3r_i=0
	# babeld refuses "metric 0": class 0 is "allow" (metric 0).
	echo "redistribute ip ::/0 eq 0 proto $_l3r_gwproto allow"
	for _l3r_m in 64 128 256 512 1024 2048 4096; do
		_l3r_i=$((_l3r_i + 1))
		echo "redistribute ip ::/0 eq 0 proto $((_l3r_gwproto + _l3r_i)) metric $_l3r_m"
	done
	echo "redistribute ip ::/0 eq 0 proto $((_l3r_gwproto + 8)) metric 65534"
	for _l3r_p in $_l3r_prefixes $_l3r_ncp; do
		echo "redistribute ip $_l3r_p deny"
	done
	if [ -n "$_l3r_node" ]; then
		echo "redistribute local ip $_l3r_node/128 allow"
	fi
	echo "redistribute local deny"
}

# _l3r_babeld_dir: prints babeld's directory of configuration fragments.
_l3r_babeld_dir() {
	if [ -n "${L3R_BABELD_DIR:-}" ]; then
		printf '%s' "$L3R_BABELD_DIR"
		return 0
	fi
	_l3r_dir=$(uci -q get 'babeld.@general[0].conf_dir' 2>/dev/null)
	_l3r_dir=${_l3r_dir:-/tmp/babeld.d}
	printf '%s' "${_l3r_dir%/}"
}

# l3roamd_write_babeld: writes <babeld conf_dir>/l3roamd.conf (or removes
# it when l3roamd.babeld.enabled is 0) and reloads babeld if it changed.
l3roamd_write_babeld() {
	_l3r_bdir=$(_l3r_babeld_dir)
	_l3r_bfile="$_l3r_bdir/l3roamd.conf"
	if ! l3roamd_enabled babeld; then
		[ -e "$_l3r_bfile" ] || return 0
		rm -f "$_l3r_bfile"
		_l3r_changed=1
	else
		mkdir -p "$_l3r_bdir" || return 1
		_l3r_btmp="$_l3r_bfile.tmp.$$"
		if ! l3roamd_render_babeld >"$_l3r_btmp"; then
			rm -f "$_l3r_btmp"
			return 1
		fi
		_l3r_install "$_l3r_btmp" "$_l3r_bfile" || return 1
	fi
	if [ "$_l3r_changed" = 1 ] && [ "$L3R_BABELD_RELOAD" != 0 ] &&
		[ -x /etc/init.d/babeld ] && /etc/init.d/babeld enabled; then
		_l3r_log notice "babeld rules in $_l3r_bfile changed; reloading babeld"
		/etc/init.d/babeld reload
	fi
	return 0
}

# l3roamd_generate: the UCI configuration to the TOML and the babeld rules.
l3roamd_generate() {
	l3roamd_load || return 1
	l3roamd_write_toml "$L3R_TOML" || return 1
	l3roamd_write_babeld || _l3r_log warning "babeld rules not updated"
	return 0
}

# ----- procd -----

# l3roamd_start_instance SECTION NAME: start_service of the init script of
# daemon NAME (the link /usr/sbin/NAME), whose TOML section is SECTION.
l3roamd_start_instance() {
	if ! l3roamd_generate; then
		# A bad edit must not take a working node down: a reload hands
		# procd the same instance as before, which keeps it running.
		if [ ! -s "$L3R_TOML" ]; then
			_l3r_log err "$2: /etc/config/l3roamd has errors (see above); not starting"
			return 1
		fi
		_l3r_log err "$2: /etc/config/l3roamd has errors (see above); keeping the previous $L3R_TOML"
		_l3r_instance "$2"
		return 1
	fi
	if ! l3roamd_enabled "$1"; then
		_l3r_log notice "$2: disabled (l3roamd.$1.enabled is off)"
		return 0
	fi
	if [ -z "$(l3roamd_get mesh node_address)" ]; then
		_l3r_log notice "$2: l3roamd.mesh.node_address is not set; not starting"
		return 0
	fi
	if [ "$1" = client_db ]; then
		_l3r_db=$(l3roamd_get client_db db_path)
		_l3r_db=${_l3r_db:-/var/lib/l3roamd/client-db}
		case "$_l3r_db" in
		/*/*) mkdir -p "${_l3r_db%/*}" ;;
		esac
	fi
	_l3r_instance "$2"
}

# _l3r_instance NAME: the procd instance of daemon NAME.
_l3r_instance() {
	procd_open_instance "$1"
	procd_set_param command "$L3R_BIN_DIR/$1" -c "$L3R_TOML"
	# Restarted by a reload when the shared configuration changed.
	procd_set_param file "$L3R_TOML"
	procd_set_param respawn "$L3R_RESPAWN_THRESHOLD" "$L3R_RESPAWN_TIMEOUT" "$L3R_RESPAWN_RETRY"
	procd_set_param stdout 1
	procd_set_param stderr 1
	procd_close_instance
}

# ----- mesh interfaces at runtime -----

# l3roamd_mesh_devices: prints the devices of the netifd interfaces that
# are up and whose proto is one of l3roamd.mesh.mesh_proto (words), one a
# line, as Gluon's l3roamd script picks them (proto gluon_mesh).
l3roamd_mesh_devices() {
	_l3r_dump=$(${L3R_UBUS:-ubus} call network.interface dump) || return 1
	for _l3r_proto in $(l3roamd_get mesh mesh_proto); do
		printf '%s\n' "$_l3r_dump" |
			jsonfilter -e "@.interface[@.proto='$_l3r_proto' && @.up=true].device"
	done
}

# _l3r_ctl ARGS...: `l3roamd ctl` on core's socket $_l3r_socket.
_l3r_ctl() {
	"$L3R_BIN_DIR/l3roamd" ctl -s "$_l3r_socket" "$@"
}

# l3roamd_sync_mesh_interfaces: makes core's runtime mesh interfaces the
# devices of l3roamd_mesh_devices: adds those core does not use, removes the
# runtime ones that are gone (never the configured mesh.mesh_interfaces).
# Nothing to do without mesh.mesh_proto. Core applies each change to
# ndproxy and client-db; none of the daemons restarts.
l3roamd_sync_mesh_interfaces() {
	l3roamd_load || return 1
	[ -n "$(l3roamd_get mesh mesh_proto)" ] || return 0
	_l3r_socket=$(l3roamd_get core socket)
	if [ -z "$_l3r_socket" ]; then
		_l3r_socket=$(l3roamd_get runtime socket_dir)
		_l3r_socket=${_l3r_socket:-/var/run/l3roamd}/core.sock
	fi
	_l3r_want=$(l3roamd_mesh_devices) || {
		_l3r_log warning "mesh interfaces: cannot read netifd's interfaces"
		return 1
	}
	_l3r_want=$(printf '%s\n' "$_l3r_want" | tr '\n' ' ')
	_l3r_failed=0
	for _l3r_dev in $_l3r_want; do
		_l3r_ctl add-meshif "$_l3r_dev" >/dev/null ||
			_l3r_error "mesh interfaces: adding $_l3r_dev failed"
	done
	_l3r_have=$(_l3r_ctl get-meshifs) || {
		_l3r_log warning "mesh interfaces: l3roamd-core does not answer"
		return 1
	}
	printf '%s\n' "$_l3r_have" | while read -r _l3r_dev _l3r_present _l3r_origin; do
		[ "$_l3r_origin" = runtime ] || continue
		case " $_l3r_want " in
		*" $_l3r_dev "*) ;;
		*) _l3r_ctl del-meshif "$_l3r_dev" >/dev/null ||
			_l3r_log err "mesh interfaces: removing $_l3r_dev failed" ;;
		esac
	done
	return "$_l3r_failed"
}

# l3roamd_sync_when_up [TRIES]: waits (1 s apart, at most TRIES [30]
# times) for a starting l3roamd-core to answer, then runs
# l3roamd_sync_mesh_interfaces once: the links that came up before core
# (at boot, or while core was restarted) raise no interface event of their
# own. Does nothing without mesh.mesh_proto.
l3roamd_sync_when_up() {
	l3roamd_load >/dev/null 2>&1 || return 1
	[ -n "$(l3roamd_get mesh mesh_proto)" ] || return 0
	_l3r_socket=$(l3roamd_get core socket)
	if [ -z "$_l3r_socket" ]; then
		_l3r_socket=$(l3roamd_get runtime socket_dir)
		_l3r_socket=${_l3r_socket:-/var/run/l3roamd}/core.sock
	fi
	_l3r_try=${1:-30}
	while ! _l3r_ctl get-meshifs >/dev/null 2>&1; do
		_l3r_try=$((_l3r_try - 1))
		if [ "$_l3r_try" -le 0 ]; then
			_l3r_log warning "mesh interfaces: l3roamd-core did not answer after its start"
			return 1
		fi
		sleep 1
	done
	l3roamd_sync_mesh_interfaces
}

# l3roamd_mesh_trigger SCRIPT: when mesh.mesh_proto is set, a procd trigger
# on every netifd interface event that runs `SCRIPT sync_meshifs`.
l3roamd_mesh_trigger() {
	l3roamd_load >/dev/null 2>&1 || return 0
	[ -n "$(l3roamd_get mesh mesh_proto)" ] || return 0
	procd_open_trigger
	procd_add_raw_trigger 'interface.*' 0 "$1" sync_meshifs
	procd_close_trigger
}
