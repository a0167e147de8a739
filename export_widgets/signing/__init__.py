"""Request signing for the two providers: Huawei ``SDK-HMAC-SHA256`` and Baidu ``bce-auth-v1``."""

from .bce import BceAuth
from .sdk_hmac import SdkHmacAuth

__all__ = ["BceAuth", "SdkHmacAuth"]
