"""De-identification: which DICOM attributes identify a patient.

PS3.15 Annex E, the Basic Application Level Confidentiality Profile. Identifying
attributes are kept apart from the metadata shown, and are never shown or written unless
the user asks for them.
"""

from __future__ import annotations

# The attributes most likely to identify a patient.
IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
        "OtherPatientNames", "PatientBirthDate", "PatientBirthTime", "PatientBirthName",
        "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
        "MedicalRecordLocator", "PatientAge", "PatientSex", "PatientSize", "PatientWeight",
        "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
        "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
        "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "ReferringPhysicianName", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
        "RequestingPhysician", "AccessionNumber", "StudyID", "StudyDate", "SeriesDate",
        "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime",
        "ContentTime", "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
        "StationName", "DeviceSerialNumber", "StudyInstanceUID", "SeriesInstanceUID",
        "SOPInstanceUID", "MediaStorageSOPInstanceUID", "FrameOfReferenceUID",
        "StudyDescription", "SeriesDescription", "RequestedProcedureDescription",
        "PerformedProcedureStepDescription", "ProtocolName", "ImageComments",
        "IssuerOfPatientID", "PatientInsurancePlanCodeSequence", "ResponsiblePerson",
        "ResponsibleOrganization", "ScheduledPerformingPhysicianName",
    }
)

# UIDs that describe the kind of object, not the patient: safe to show.
TECHNICAL_UIDS = frozenset({"SOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID",
                            "ImplementationClassUID", "ReferencedSOPClassUID"})

def is_identifying(elem) -> bool:
    """PS3.15 Basic Profile, conservatively: named attributes, person names, dates and
    instance UIDs (they link a file to a patient's record)."""
    keyword = elem.keyword or ""
    if keyword in IDENTIFYING_KEYWORDS or elem.VR in ("PN", "DA", "DT"):
        return True
    return elem.VR == "UI" and keyword not in TECHNICAL_UIDS


def identifying(ds) -> dict[str, str]:
    """Identifying attributes, for showing only when the user asks."""
    found: dict[str, str] = {}
    for elem in ds.iterall():
        if elem.VR != "SQ" and is_identifying(elem) and str(elem.value):
            found.setdefault(elem.keyword or str(elem.tag), str(elem.value))
    return found
