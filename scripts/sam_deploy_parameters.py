"""The one Architecture of `make deploy` (run with the .venv python: it reads
samconfig.toml with SAM CLI's own code, so quoting and precedence are sam's).

  architecture
      The Architecture in samconfig.toml's [default.global.parameters]
      parameter_overrides: the one place it is set.
  pin TEMPLATE ARCH
      The built template allows only ARCH, so a deploy of that build with
      another Architecture (an answer to a --guided prompt, a saved override)
      is refused before anything changes.
  overrides ARCH OUT [Key=Value ...]
      Writes the overrides sam deploy would read from samconfig.toml (its
      deploy section, which --guided fills with every parameter, else the
      global one), then the given pairs, then Architecture=ARCH, as YAML for
      `sam deploy --parameter-overrides file://OUT`. A command-line
      --parameter-overrides replaces samconfig's whole string, hence the merge.
"""

import sys
from pathlib import Path

from samcli.cli.types import CfnParameterOverridesType
from samcli.lib.config.samconfig import SamConfig
from samcli.yamlhelper import yaml_dump, yaml_parse


def fail(message):
    sys.exit(f"make deploy: {message}")


def saved_overrides(command):
    """Parameter overrides samconfig.toml gives `sam <command>` (default env)."""
    params = SamConfig(Path.cwd()).get_all([command], "parameters")
    value = params.get("parameter_overrides")
    if not value:
        return {}
    return CfnParameterOverridesType().convert(value, None, None)


def architecture():
    arch = saved_overrides("global").get("Architecture")
    if not arch:
        fail(
            "samconfig.toml's [default.global.parameters] parameter_overrides "
            "names no Architecture; set it there or pass ARCH="
        )
    print(arch)


def pin(template_path, arch):
    template = yaml_parse(Path(template_path).read_text())
    parameter = template["Parameters"]["Architecture"]
    allowed = parameter.get("AllowedValues", [])
    if arch not in allowed:
        fail(f"Architecture={arch} is not one of {allowed}")
    parameter["AllowedValues"] = [arch]
    parameter["Default"] = arch
    Path(template_path).write_text(yaml_dump(template))


def overrides(arch, out, pairs):
    merged = saved_overrides("deploy")
    merged.update(CfnParameterOverridesType().convert(pairs, None, None) if pairs else {})
    merged["Architecture"] = arch
    Path(out).write_text(yaml_dump({key: str(value) for key, value in merged.items()}))


def main(argv):
    match argv:
        case ["architecture"]:
            architecture()
        case ["pin", template_path, arch]:
            pin(template_path, arch)
        case ["overrides", arch, out, *pairs]:
            overrides(arch, out, pairs)
        case _:
            fail(f"usage: see {__file__}'s docstring (got {argv})")


if __name__ == "__main__":
    main(sys.argv[1:])
