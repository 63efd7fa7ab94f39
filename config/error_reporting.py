"""What error reports may show: never a token value, never key material.

Django's `SafeExceptionReporterFilter` hides POST parameters marked with
`@sensitive_post_parameters` and settings named like keys, but only while DEBUG is off: on the
DEBUG error page everything is shown. Coffer's filter is always active, and for a view that
receives token values (marked with `@sensitive_post_parameters`) it also hides every local
variable of every frame: a value travels through the form, the model and the crypto module
under many names (`value`, `data`, `plaintext`, `dek`), so naming them one by one would miss one.
The traceback itself (files, lines, code) is still shown, so errors stay debuggable.
"""

from __future__ import annotations

from django.views.debug import SafeExceptionReporterFilter


class CofferExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request) -> bool:
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        if request is not None and getattr(request, "sensitive_post_parameters", None):
            return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]
        return super().get_traceback_frame_variables(request, tb_frame)
