"""One module per cloud: request building, error mapping and response normalisation."""

from .modelarts import ModelArtsClient
from .qianfan import QianfanClient

__all__ = ["ModelArtsClient", "QianfanClient"]
