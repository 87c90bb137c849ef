"""Sample SPD production requests, in the service's own JSON format (see app/prodrequests/mapping.py).

Physics tags, containers and execution paths follow SPD's CVMFS layout
(/cvmfs/spd.jinr.ru/images/<image>.sif, /cvmfs/spd.jinr.ru/production/MC/<tag>.V<nn>); new requests
have no paths yet, as on the real service before the software is prepared.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

IMAGES = "/cvmfs/spd.jinr.ru/images"
MC = "/cvmfs/spd.jinr.ru/production/MC"

AUTHORS = {
    "ez": ("ezemlyanichkina", "Elena Zemlyanichkina"),
    "ap": ("apetrosyan", "Artem Petrosyan"),
    "is": ("isokolov", "Ivan Sokolov"),
    "mk": ("mkuznetsova", "Maria Kuznetsova"),
    "do": ("dorlov", "Dmitry Orlov"),
}

# fmt: off
# process, generator (short), generator, sqrt(s) GeV, software, dev build, events, group, state, author, note
_ROWS: list[tuple[str, str, str, float, str, bool, int, str, str, str, str]] = [
    ("minbias", "P8", "Pythia8", 10, "4.1.7", True, 40_000_000, "Detector performance", "Done", "ez",
     "Commissioning sample for the tracker and ECal timing studies."),
    ("minbias", "P8", "Pythia8", 27, "4.1.7", True, 40_000_000, "Detector performance", "Done", "ez",
     "Same as the 10 GeV sample at the top NICA energy."),
    ("jpsi", "P8", "Pythia8", 27, "4.1.7", False, 10_000_000, "Charmonia", "Done", "ap",
     "J/psi -> mu+ mu- forced decays; muon system acceptance."),
    ("opencharm", "P8", "Pythia8", 27, "4.1.7", False, 20_000_000, "Open charm", "In progress", "is",
     "D0 -> K pi and D+ -> K pi pi, vertex detector resolution scan."),
    ("promptgamma", "P8", "Pythia8", 27, "4.1.8", False, 15_000_000, "Prompt photons", "In progress", "mk",
     "Prompt photon production with pi0 background; ECal clustering v2."),
    ("minbias", "FTF", "Geant4 FTF", 13.5, "4.1.8", False, 8_000_000, "Light hadrons", "Approved", "do",
     "FTF model comparison against Pythia8 at 13.5 GeV."),
    ("lambda", "P8", "Pythia8", 27, "4.1.8", False, 12_000_000, "Light hadrons", "Approved", "do",
     "Lambda polarization; needs the straw-tracker alignment of 4.1.8."),
    ("dd-minbias", "UrQMD", "UrQMD", 13.5, "4.1.8", False, 5_000_000, "Polarized dd", "New", "mk",
     "First d-d sample; container to be prepared."),
    ("gluon-tmd", "P8", "Pythia8", 27, "4.1.8", False, 30_000_000, "Gluon TMDs", "Approved", "ap",
     "Open charm and charmonia with transversely polarized beams (Sivers asymmetry)."),
    ("jpsi", "P8", "Pythia8", 27, "4.1.8", False, 20_000_000, "Charmonia", "New", "ap",
     "Re-run of request 3 with the 4.1.8 reconstruction."),
    ("psi2s", "P8", "Pythia8", 27, "4.1.8", False, 5_000_000, "Charmonia", "On hold", "is",
     "Waiting for the muon range system digitization update."),
    ("minbias", "P8", "Pythia8", 10, "4.1.6", False, 2_000_000, "Software validation", "Rejected", "ez",
     "Superseded by request 1 (4.1.7)."),
    ("pileup", "P8", "Pythia8", 27, "4.1.8", True, 4_000_000, "Detector performance", "In progress", "ez",
     "Time-slice pile-up with 3 MHz interaction rate."),
    ("chic", "P8", "Pythia8", 27, "4.1.8", False, 6_000_000, "Charmonia", "Approved", "is",
     "chi_c1/chi_c2 -> J/psi gamma."),
    ("minbias", "P8", "Pythia8", 13.5, "4.1.8", False, 20_000_000, "Light hadrons", "Done", "do",
     "Reference minimum bias at the intermediate energy."),
    ("dimuon-dy", "P8", "Pythia8", 27, "4.1.8", False, 10_000_000, "Gluon TMDs", "New", "mk",
     "Drell-Yan background for the charmonia analyses."),
    ("kshort", "P8", "Pythia8", 10, "4.1.7", True, 6_000_000, "Light hadrons", "Done", "do",
     "K0s -> pi pi for the vertex detector alignment."),
    ("singlemu", "PG", "Particle gun", 0, "4.1.8", True, 1_000_000, "Software validation", "Done", "ez",
     "Single muons 0.5-5 GeV/c, flat in eta; tracking efficiency."),
    ("singlegamma", "PG", "Particle gun", 0, "4.1.8", True, 1_000_000, "Software validation", "In progress", "ez",
     "Single photons 0.1-10 GeV for the ECal calibration."),
    ("opencharm", "P8", "Pythia8", 27, "4.1.8", False, 40_000_000, "Open charm", "New", "is",
     "Large open-charm sample for the D-meson asymmetries."),
    ("promptgamma", "P8", "Pythia8", 27, "4.1.7", False, 5_000_000, "Prompt photons", "Done", "mk",
     "Pilot sample with the 4.1.7 ECal."),
    ("minbias", "P8", "Pythia8", 27, "4.1.8", True, 10_000_000, "Detector performance", "Approved", "ez",
     "Noise and occupancy with the 4.1.8 digitization."),
    ("eta-c", "P8", "Pythia8", 27, "4.1.8", False, 8_000_000, "Charmonia", "Approved", "ap",
     "eta_c -> p pbar feasibility."),
    ("deuteron-elastic", "PG", "Particle gun", 13.5, "4.1.8", False, 500_000, "Polarized dd", "New", "mk",
     "Elastic dd for the beam polarimetry; configuration in preparation."),
    ("minbias", "FTF", "Geant4 FTF", 27, "4.1.8", False, 8_000_000, "Light hadrons", "New", "do",
     "FTF model at 27 GeV (follows request 6)."),
]
# fmt: on


def _energy_tag(energy: float) -> str:
    return f"{energy:g}GeV"


def _record(number: int, row: tuple) -> dict[str, Any]:
    process, gen, generator, energy, version, dev, events, group, state, author, note = row
    digits = version.replace(".", "")
    image = f"spdroot-dev-{version}" if dev else f"spdroot-{version}"
    tag = f"{process}-{gen}-spdroot{digits}{'-dev' if dev else ''}"
    if energy:
        tag += f".{_energy_tag(energy)}"
    created = datetime(2025, 1, 13, 9, 30, tzinfo=UTC) + timedelta(days=4 * number, hours=number % 7)
    prepared = state not in ("New", "Rejected")
    username, full_name = AUTHORS[author]
    return {
        "id": number,
        "title": f"{process.replace('-', ' ')} ({generator})"
        + (f" at {energy:g} GeV" if energy else "")
        + f", SpdRoot {version}",
        "physics_group": group,
        "author": {"username": username, "full_name": full_name},
        "state": state,
        "generator": generator,
        "tag": tag,
        "sqrt_s": f"{energy:g} GeV" if energy else None,
        "n_events": events,
        "software": image,
        "container": f"{IMAGES}/{image}.sif" if prepared else "",
        "config_path": f"{MC}/{tag}.V01" if prepared else None,
        "comment": note,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "modified": (created + timedelta(days=3, hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def sample_requests() -> list[dict[str, Any]]:
    """A fresh copy of the sample requests, ids 1..N."""
    return [_record(number, row) for number, row in enumerate(_ROWS, start=1)]
