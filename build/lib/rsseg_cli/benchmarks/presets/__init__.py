"""The benchmarks `rsseg prepare` knows: one module per dataset, one line each here."""

from rsseg_cli.benchmarks.preset import Preset
from rsseg_cli.benchmarks.presets import deepglobe, gid15, loveda, mer, msl, potsdam, potsdam_dwl, whdld

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        whdld.PRESET,
        loveda.PRESET,
        potsdam.PRESET,
        gid15.PRESET,
        mer.PRESET,
        msl.PRESET,
        potsdam_dwl.PRESET,
        deepglobe.PRESET,
    )
}
