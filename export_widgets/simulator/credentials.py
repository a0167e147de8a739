"""The simulator's own fake credentials. They are accepted only by the simulator and are not secrets,
but they are still masked in ``repr`` so habits formed here carry over to real keys."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PROJECT_ID", "SimulatorCredentials"]

#: ModelArts project id the simulator serves (32 hex characters, like a real IAM project id).
DEFAULT_PROJECT_ID = "5f2d8c1e9a7b4036b1e4c2d9a8f70b13"


@dataclass(frozen=True)
class SimulatorCredentials:
    """Keys the simulator accepts: ModelArts AK/SK, an IAM token, temporary AK/SK + security token,
    and a Qianfan AK/SK."""

    modelarts_ak: str = "HPUASIMULATORAK00001"
    modelarts_sk: str = "SimulatorModelArtsSecretKey0123456789abc"
    token: str = "MIISimulatorIamToken-not-a-real-token-7c1f0e9b2d4a"
    temp_ak: str = "HSTSIMULATORTEMPAK01"
    temp_sk: str = "SimulatorTemporarySecretKey0123456789xyz"
    security_token: str = "gQpjbi1ub3J0aC00SimulatorSecurityToken-not-real"
    qianfan_ak: str = "0b5e3c9d7a1f4e2b8c6d0a9e7f3b1c5d"
    qianfan_sk: str = "e4a7c1f9b2d6083a5c7e9f1b3d5a7c9e"
    #: The platform's own BOS key that pre-signs download URLs (never given to clients).
    bos_ak: str = "a1c3e5f7b9d24680ace13579bdf02468"
    bos_sk: str = "f0e1d2c3b4a5968778695a4b3c2d1e0f"

    def __repr__(self) -> str:
        return "SimulatorCredentials(ModelArts AK/SK, IAM token, temporary AK/SK, Qianfan AK/SK: ***)"

    def modelarts_secret(self, access_key: str) -> str | None:
        """SK for a ModelArts AK (permanent or temporary), None if unknown."""
        return {self.modelarts_ak: self.modelarts_sk, self.temp_ak: self.temp_sk}.get(access_key)

    def qianfan_secret(self, access_key: str) -> str | None:
        """SK for a Qianfan AK, None if unknown."""
        return self.qianfan_sk if access_key == self.qianfan_ak else None
