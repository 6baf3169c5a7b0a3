"""Staff two-factor sign-in (django-otp, TOTP) for the admin.

django-otp checks tokens and ships an admin login form, but no way for a user to enrol a device;
the small enrolment page here fills that gap: it shows the authenticator app's QR code (qrcode) and
confirms the device with a first token. Who must use it: see `otp_required_for`.
"""

from io import BytesIO

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice

OTP_ROLES = ("Operations",)


def otp_required_for(user: User | AnonymousUser) -> bool:
    """Superusers and the Operations role sign in with a second factor when STAFF_OTP_REQUIRED
    (on whenever DEBUG is off)."""
    if not settings.STAFF_OTP_REQUIRED or not user.is_authenticated:
        return False
    return user.is_superuser or user.groups.filter(name__in=OTP_ROLES).exists()


def otp_satisfied(user) -> bool:
    return not otp_required_for(user) or user.is_verified()


class StaffLoginForm(OTPAdminAuthenticationForm):
    """The admin login: password, plus the authenticator code for anyone who has enrolled a device.
    A user who must use two-factor but has no device yet signs in with the password and is sent to
    enrol before any admin page opens."""

    def clean(self):
        self.cleaned_data = AdminAuthenticationForm.clean(self)
        user = self.get_user()
        if user is not None and user_has_device(user, confirmed=True):
            self.clean_otp(user)
        return self.cleaned_data


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Code from your authenticator app",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _qr_svg(data: str) -> str:
    buffer = BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    return buffer.getvalue().decode()


@login_required(login_url="admin:login")
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol (or, with a device, verify) the signed-in staff user's authenticator; then the admin."""
    user = request.user
    if not user.is_staff:
        return redirect("admin:login")
    if user.is_verified():  # type: ignore[attr-defined]  # set by django-otp's OTPMiddleware
        return redirect("admin:index")
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    device = confirmed or TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].strip()):
            if not device.confirmed:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
            otp_login(request, device)
            return redirect("admin:index")
        form.add_error("token", "That code is not valid. Check your device's clock and try again.")
    context = {
        "form": form,
        "enrolling": not device.confirmed,
        "qr_svg": mark_safe(_qr_svg(device.config_url)) if not device.confirmed else "",  # noqa: S308 - our own SVG
        "secret": device.key if not device.confirmed else "",
        "title": "Two-factor sign-in",
        "site_header": "Onboarding",
    }
    return render(request, "admin/otp_setup.html", context)
