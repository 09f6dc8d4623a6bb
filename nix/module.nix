# portico as a NixOS service: services.portico.*
#
# settings is portico's configuration (see portico.yaml(5)), written as
# JSON, which portico's YAML loader reads as it is. services.portico.services
# takes tsnsrv's per-service options (services.tsnsrv.services.<name>) where
# portico has the same meaning, and turns them into settings; docs/nixos.md
# has the mapping and says why the other tsnsrv options are absent.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    any
    attrNames
    concatMap
    elem
    filter
    filterAttrs
    hasPrefix
    length
    literalExpression
    mapAttrs
    mapAttrsToList
    match
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    optional
    optionalAttrs
    removePrefix
    types
    unique
    ;

  cfg = config.services.portico;
  json = pkgs.formats.json { };
  exe = "${cfg.package}/bin/portico";
  # The file the unit names: its text lives in /etc, so that a change of
  # settings changes a file and not the unit, and the unit reloads.
  configPath = "/etc/portico/portico.yaml";
  configFile = json.generate "portico.json" cfg.settings;

  urlPartsOptions = {
    protocol = mkOption {
      description = "Scheme of the upstream service (`http` or `https`).";
      type = types.str;
      default = "http";
    };
    host = mkOption {
      description = "Host where the upstream service can be reached.";
      type = types.str;
    };
    port = mkOption {
      description = "Port where the upstream service can be reached.";
      type = types.port;
    };
  };

  serviceOptions =
    { config, ... }:
    {
      options = {
        toURL = mkOption {
          description = ''
            URL to forward requests to: `http://host:port` or `https://host:port`
            (portico's `upstream`; it takes no path). Either this, `urlParts` or
            `upstreamUnixAddr` must be set.
          '';
          type = types.nullOr types.str;
          default =
            if config.urlParts == null then
              null
            else
              "${config.urlParts.protocol}://${config.urlParts.host}:${toString config.urlParts.port}";
          defaultText = literalExpression ''"''${urlParts.protocol}://''${urlParts.host}:''${toString urlParts.port}"'';
          example = "http://127.0.0.1:3000";
        };
        urlParts = mkOption {
          description = "URL parts that make up `toURL`.";
          type = types.nullOr (types.submodule { options = urlPartsOptions; });
          default = null;
        };
        upstreamUnixAddr = mkOption {
          description = "Connect to the upstream over this Unix socket (portico's `upstream: unix:PATH`).";
          type = types.nullOr types.path;
          default = null;
        };
        prefixes = mkOption {
          description = ''
            tsnsrv's path allowlist. portico serves every path of a service on
            the tailnet, so a tailnet prefix must be `/` (or the list empty);
            `funnel:` prefixes become `tailscale.funnel.paths`.
          '';
          type = types.listOf (types.strMatching "^(/|tailnet:/|funnel:/).*");
          default = [ ];
          example = [
            "tailnet:/"
            "funnel:/.well-known/"
          ];
        };
        stripPrefix = mkOption {
          description = ''
            tsnsrv strips the matched prefix. It only matters for a prefix
            other than `/`, which portico allows only for Funnel, where the
            path goes to the upstream unchanged: set it to false there.
          '';
          type = types.bool;
          default = true;
        };
        upstreamHeaders = mkOption {
          description = "Headers to set on requests to the upstream (portico's `headers`).";
          type = types.attrsOf types.str;
          default = { };
        };
        insecureHTTPS = mkOption {
          description = "Do not verify an https:// upstream's certificate (portico's `tls_insecure_skip_verify`).";
          type = types.bool;
          default = false;
        };
        funnel = mkOption {
          description = ''
            Publish this service on the public internet through Tailscale
            Funnel (portico's `tailscale.funnel`, on the node's own name: one
            service per node).
          '';
          type = types.bool;
          default = false;
        };
        tags = mkOption {
          description = ''
            The tag the tailnet policy grants this service by (portico's
            `tailscale.service_tags`, one tag for every service).
          '';
          type = types.listOf (types.strMatching "^tag:.*");
          default = [ ];
          example = [ "tag:service" ];
        };
        authURL = mkOption {
          description = "Forward-auth server, e.g. `http://127.0.0.1:9091` (the fork's option; portico's `auth`).";
          type = types.nullOr types.str;
          default = null;
        };
        authPath = mkOption {
          description = "Path (and query) on `authURL` that decides each request.";
          type = types.str;
          default = "/api/authz/forward-auth";
        };
        authTimeout = mkOption {
          description = "How long the forward-auth server may take (portico's `auth.NAME.timeout`).";
          type = types.nullOr types.str;
          default = "5s";
        };
        authCopyHeaders = mkOption {
          description = "Headers of the auth server's answer to pass upstream; only the names are used.";
          type = types.attrsOf types.str;
          default = { };
          example = {
            "Remote-User" = "";
            "Remote-Groups" = "";
          };
        };
        authBypassForTailnet = mkOption {
          description = "Tailnet users skip forward auth (portico's `auth_bypass_tailnet`).";
          type = types.bool;
          default = false;
        };
      };
    };

  # tsnsrv's prefixes, split by where they apply ("/x" applies to both).
  tailnetPrefixes =
    s: map (removePrefix "tailnet:") (filter (p: !(hasPrefix "funnel:" p)) s.prefixes);
  funnelPrefixes = s: map (removePrefix "funnel:") (filter (p: !(hasPrefix "tailnet:" p)) s.prefixes);
  funnelPaths = s: if s.prefixes == [ ] then [ "/" ] else funnelPrefixes s;

  serviceSettings =
    name: s:
    {
      upstream = if s.upstreamUnixAddr != null then "unix:${s.upstreamUnixAddr}" else s.toURL;
    }
    // optionalAttrs (s.upstreamHeaders != { }) { headers = s.upstreamHeaders; }
    // optionalAttrs s.insecureHTTPS { tls_insecure_skip_verify = true; }
    // optionalAttrs (s.authURL != null) { auth = name; }
    // optionalAttrs (s.authURL != null && s.authBypassForTailnet) { auth_bypass_tailnet = true; };

  authSettings =
    name: s:
    {
      url = s.authURL + s.authPath;
      copy_headers = attrNames s.authCopyHeaders;
    }
    // optionalAttrs (s.authTimeout != null) { timeout = s.authTimeout; };

  withAuth = filterAttrs (_: s: s.authURL != null) cfg.services;
  funnelled = attrNames (filterAttrs (_: s: s.funnel) cfg.services);
  allTags = unique (concatMap (s: s.tags) (lib.attrValues cfg.services));

  serviceAssertions =
    name: s:
    let
      at = "services.portico.services.${name}";
      tailnet = tailnetPrefixes s;
      paths = funnelPaths s;
    in
    [
      {
        assertion = s.toURL != null || s.upstreamUnixAddr != null;
        message = "${at}: set toURL, urlParts or upstreamUnixAddr.";
      }
      {
        assertion = s.toURL == null || match "[a-z+]+://[^/]*/?" s.toURL != null;
        message = "${at}: toURL ${toString s.toURL} has a path; portico's upstream takes none (settings.services.${name}.routes with strip_prefix maps a path prefix to an upstream).";
      }
      {
        assertion = s.prefixes == [ ] || elem "/" tailnet;
        message = "${at}: prefixes ${builtins.toJSON s.prefixes}: portico serves every path of a service on the tailnet and has no per-path allowlist there, so a tailnet prefix must be \"/\" (or \"tailnet:/\").";
      }
      {
        assertion = s.funnel || !any (hasPrefix "funnel:") s.prefixes;
        message = "${at}: funnel: prefixes apply only with funnel = true.";
      }
      {
        assertion = !s.funnel || paths != [ ];
        message = "${at}: funnel = true, but no prefix applies to Funnel.";
      }
      {
        assertion = !s.funnel || !s.stripPrefix || paths == [ "/" ];
        message = "${at}: Funnel paths other than \"/\" reach the upstream unchanged in portico; set stripPrefix = false.";
      }
      {
        assertion = !s.authBypassForTailnet || s.authURL != null;
        message = "${at}: authBypassForTailnet applies to a service with authURL.";
      }
      {
        assertion = !s.insecureHTTPS || s.upstreamUnixAddr == null && s.toURL != null && hasPrefix "https://" s.toURL;
        message = "${at}: insecureHTTPS applies to an https:// upstream.";
      }
    ];

  # Ports below 1024 need CAP_NET_BIND_SERVICE: the listen addresses of the
  # settings that can name a port (unix: sockets and names without a port
  # have none). The hairpin listener's default is 127.0.0.1:443.
  addrOf = a: if builtins.isAttrs a then a.addr or "" else toString a;
  asList = v: if builtins.isList v then v else [ v ];
  st = cfg.settings;
  hairpin = (st.tailscale or { }).hairpin or false;
  hairpinOn = if builtins.isAttrs hairpin then hairpin.enabled or true else hairpin == true;
  listenAddrs =
    map addrOf (asList (st.listen or [ ]))
    ++ optional (st ? metrics && st.metrics ? listen) (addrOf st.metrics.listen)
    ++ concatMap (v: optional (builtins.isAttrs v && v ? tcp && v.tcp ? listen) (addrOf v.tcp.listen)) (
      lib.attrValues (st.services or { })
    )
    ++ (
      if !hairpinOn then
        [ ]
      else if builtins.isAttrs hairpin && hairpin ? listen then
        map addrOf (asList hairpin.listen)
      else
        [ "127.0.0.1:443" ]
    );
  portOf =
    a:
    let
      m = match ".*:([0-9]+)" a;
    in
    if hasPrefix "unix:" a || m == null then null else lib.toInt (builtins.head m);
  privilegedPorts = any (p: p != null && p < 1024) (map portOf listenAddrs);

  notifyReload = lib.versionAtLeast (lib.getVersion config.systemd.package) "253";
in
{
  options.services.portico = {
    enable = mkEnableOption "portico, one reverse proxy for many web apps";

    package = mkOption {
      description = "The portico package to run.";
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
    };

    settings = mkOption {
      description = ''
        portico's configuration (every key is in portico.yaml(5)), written
        to /etc/portico/portico.yaml as JSON. services.portico.services adds
        to it.
      '';
      type = json.type;
      default = { };
      example = literalExpression ''
        {
          listen = [ { addr = "127.0.0.1:8080"; } ];
          domain = "tail1234.ts.net";
          tailscale.services = true;
          services.grafana.upstream = "http://127.0.0.1:3000";
        }
      '';
    };

    publishFromUnit = mkOption {
      description = ''
        Publish the Tailscale Services from the unit, as root: `portico
        tailscale apply` after start (ExecStartPost=, whose failure leaves
        portico serving) and after each reload (ExecReload=, whose failure
        fails the reload), with the daemon's own publishing turned off
        (settings.tailscale.publish = false). tailscaled lets only root or
        its operator publish a Unix-socket backend, and the service runs as
        an unprivileged dynamic user. Off: the daemon publishes by itself,
        which works only when tailscaled lets it (see docs/tailscale.md).
      '';
      type = types.bool;
      default = cfg.services != { };
      defaultText = literalExpression "config.services.portico.services != { }";
    };

    services = mkOption {
      description = ''
        Services in tsnsrv's terms (services.tsnsrv.services.<name>): each
        becomes settings.services.<name>, published on the tailnet as
        svc:<name>.
      '';
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
    };
  };

  config = mkIf cfg.enable {
    assertions = lib.flatten (mapAttrsToList serviceAssertions cfg.services) ++ [
      {
        assertion = length funnelled <= 1;
        message = "services.portico.services: funnel = true on ${toString funnelled}; portico publishes one service through Funnel (on the node's own name).";
      }
      {
        assertion = length allTags <= 1;
        message = "services.portico.services: tags ${toString allTags}; portico gives every service the same single tag (tailscale.service_tags).";
      }
      {
        assertion = allTags == [ ] || lib.all (s: s.tags != [ ]) (lib.attrValues cfg.services);
        message = "services.portico.services: tags are set on some services only; portico gives every service the same tag.";
      }
    ];

    services.portico.settings = mkMerge [
      (mkIf (cfg.services != { }) {
        services = mapAttrs serviceSettings cfg.services;
        tailscale.services = lib.mkDefault true;
      })
      (mkIf cfg.publishFromUnit { tailscale.publish = lib.mkDefault false; })
      (mkIf (withAuth != { }) { auth = mapAttrs authSettings withAuth; })
      (mkIf (allTags != [ ]) { tailscale.service_tags = allTags; })
      (mkIf (funnelled != [ ]) {
        tailscale.funnel =
          let
            name = builtins.head funnelled;
            paths = funnelPaths cfg.services.${name};
          in
          {
            service = name;
          }
          // optionalAttrs (paths != [ "/" ]) { inherit paths; };
      })
    ];

    environment.etc."portico/portico.yaml".source = configFile;

    systemd.services.portico = {
      description = "portico reverse proxy";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
        "tailscaled.service"
      ];
      wants = [ "network-online.target" ];
      # nixos-rebuild switch reloads portico when only the settings changed
      # (the unit text does not: it names /etc/portico/portico.yaml), and
      # restarts it when the unit changed (a new package).
      reloadTriggers = [ configFile ];
      stopIfChanged = false;
      serviceConfig = {
        # notify-reload (systemd 253+): systemd sends SIGHUP and waits for
        # portico's RELOADING=1 ... READY=1. It sends the signal before it
        # runs ExecReload=, so `portico check` there cannot stop a reload;
        # it makes a refused configuration (which portico keeps out by
        # itself) fail the reload job, so that nixos-rebuild reports it.
        Type = if notifyReload then "notify-reload" else "notify";
        NotifyAccess = "main";
        ExecStartPre = "${exe} check -c ${configPath}";
        ExecStart = "${exe} run -c ${configPath}";
        ExecReload = [
          "${exe} check -c ${configPath}"
        ]
        ++ optional (!notifyReload) "${pkgs.coreutils}/bin/kill -HUP $MAINPID"
        ++ optional cfg.publishFromUnit "+${exe} tailscale apply -c ${configPath}";
        # "+": with full privileges; "-": tailscaled not up yet does not
        # fail the start (the next reload publishes).
        ExecStartPost = optional cfg.publishFromUnit "-+${exe} tailscale apply -c ${configPath}";
        Restart = "on-failure";
        RestartSec = "2s";
        TimeoutStopSec = "40s";
        WatchdogSec = "30s";
        LimitNOFILE = 65536;

        DynamicUser = true;
        User = "portico";
        StateDirectory = "portico";
        StateDirectoryMode = "0700";
        RuntimeDirectory = "portico";
        RuntimeDirectoryMode = "0755";
        UMask = "0027";

        CapabilityBoundingSet = "CAP_NET_BIND_SERVICE";
        AmbientCapabilities = if privilegedPorts then "CAP_NET_BIND_SERVICE" else "";
        NoNewPrivileges = true;

        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectHostname = true;
        ProtectClock = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = "@system-service";
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
