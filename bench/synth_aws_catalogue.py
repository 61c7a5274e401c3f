"""The AWS usage-type catalogue the synthetic CUR 2.0 draws from (about 5,000 entries).

Every region x (EC2 instance types with on-demand and spot usage, EBS volumes and snapshots, S3
classes and requests, internet / inter-AZ / inter-region transfer, NAT, Lambda, RDS, DynamoDB,
ELB, EKS, CloudWatch, SageMaker, Bedrock tokens, and a long tail of services), with public-price-like
rates, units, product families, transfer endpoints and the ``product`` map attributes.
"""

from __future__ import annotations

REGIONS = [
    ("us-east-1", "USE1", "US East (N. Virginia)"), ("us-east-2", "USE2", "US East (Ohio)"),
    ("us-west-1", "USW1", "US West (N. California)"), ("us-west-2", "USW2", "US West (Oregon)"),
    ("eu-west-1", "EU", "EU (Ireland)"), ("eu-west-2", "EUW2", "EU (London)"),
    ("eu-central-1", "EUC1", "EU (Frankfurt)"), ("eu-north-1", "EUN1", "EU (Stockholm)"),
    ("ap-northeast-1", "APN1", "Asia Pacific (Tokyo)"), ("ap-northeast-2", "APN2", "Asia Pacific (Seoul)"),
    ("ap-southeast-1", "APS1", "Asia Pacific (Singapore)"), ("ap-southeast-2", "APS2", "Asia Pacific (Sydney)"),
    ("ap-south-1", "APS3", "Asia Pacific (Mumbai)"), ("ca-central-1", "CAN1", "Canada (Central)"),
    ("sa-east-1", "SAE1", "South America (Sao Paulo)"), ("me-central-1", "MEC1", "Middle East (UAE)"),
]
# family -> (price per vCPU-hour in USD, sizes)
FAMILIES = {
    "m5": (0.048, "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge"),
    "m6i": (0.048, "large xlarge 2xlarge 4xlarge 8xlarge 16xlarge"),
    "m7i": (0.0504, "large xlarge 2xlarge 4xlarge 8xlarge"),
    "c5": (0.0425, "large xlarge 2xlarge 4xlarge 9xlarge 18xlarge"),
    "c6g": (0.034, "large xlarge 2xlarge 4xlarge 8xlarge"),
    "r5": (0.063, "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge"),
    "r6g": (0.0504, "large xlarge 2xlarge 4xlarge"),
    "t3": (0.0208, "micro small medium large xlarge 2xlarge"),
    "i4i": (0.0858, "large xlarge 2xlarge 4xlarge"),
    "x2idn": (0.1039, "16xlarge 24xlarge 32xlarge"),
    "g5": (0.2515, "xlarge 2xlarge 4xlarge 12xlarge 48xlarge"),
    "g4dn": (0.1315, "xlarge 2xlarge 12xlarge"),
    "p4d": (0.3414, "24xlarge"),
    "p5": (0.5121, "48xlarge"),
    "inf2": (0.1895, "xlarge 8xlarge 24xlarge 48xlarge"),
    "trn1": (0.1679, "2xlarge 32xlarge"),
}
VCPUS = {"micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32,
         "9xlarge": 36, "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96, "32xlarge": 128, "48xlarge": 192}
SAGEMAKER = ["Train:ml.p4d.24xlarge", "Train:ml.g5.2xlarge", "Train:ml.trn1.32xlarge", "Host:ml.g5.xlarge",
             "Host:ml.inf2.xlarge", "Host:ml.m5.large", "Notebook:ml.t3.medium", "Processing:ml.m5.xlarge"]
BEDROCK = ["Claude3Sonnet", "Claude3Haiku", "Claude35Sonnet", "NovaLite", "NovaPro", "Llama3-70B"]
LONG_TAIL = ["AWSGlue", "AmazonAthena", "AmazonKinesis", "AmazonSNS", "AWSQueueService", "AmazonECR", "AmazonEFS",
             "AWSBackup", "AWSSecretsManager", "awskms", "AmazonGuardDuty", "AmazonES", "AmazonElastiCache",
             "AmazonRedshift", "AWSConfig", "AWSCloudTrail", "AmazonMSK", "AmazonStates", "AmazonApiGateway",
             "AWSSystemsManager"]


def _entry(code: str, name: str, family: str, usage: str, op: str, unit: str, rate: float, kind: str, rkind: str,
           region: tuple[str, str, str] | None, **extra) -> dict:
    product = {"product_name": name}
    if region:
        product["region"] = region[0]
    product.update(extra.pop("product", {}))
    row = {
        "code": code, "pname": name, "family": family, "usage_type": usage, "operation": op, "unit": unit,
        "rate": round(rate, 10), "kind": kind, "rkind": rkind, "itype": None,
        "region": region[0] if region else None, "location": region[2] if region else None,
        "location_type": "AWS Region" if region else None, "from_loc": None, "from_region": None, "to_loc": None,
        "to_region": None, "transfer_type": None, "servicecode": code, "spot": False,
        "pmap": [{"key": k, "value": str(v)} for k, v in product.items()],
    }
    row.update(extra)
    return row


def catalogue() -> list[dict]:
    """About 5,000 usage types: every region x (EC2 types, storage, transfer, AI, other services)."""
    out: list[dict] = []
    for index, region in enumerate(REGIONS):
        rid, code, name = region
        prefix = "" if rid == "us-east-1" else f"{code}-"
        factor = 1.0 + (index % 5) * 0.06
        for fam, (per_vcpu, sizes) in FAMILIES.items():
            for size in sizes.split():
                itype = f"{fam}.{size}"
                price = per_vcpu * VCPUS[size] * factor
                info = {"vcpu": VCPUS[size], "memory": f"{VCPUS[size] * 4} GiB", "operating_system": "Linux",
                        "tenancy": "Shared", "instance_type_family": fam}
                ec2 = ("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance")
                out.append(_entry(*ec2, f"{prefix}BoxUsage:{itype}", "RunInstances", "Hrs", price, "hours", "instance",
                                  region, itype=itype, product=info))
                out.append(_entry(*ec2, f"{prefix}SpotUsage:{itype}", "RunInstances:SV001", "Hrs", price * 0.35,
                                  "hours", "instance", region, itype=itype, spot=True, product=info))
        ec2 = ("AmazonEC2", "Amazon Elastic Compute Cloud")
        for volume, price in (("gp3", 0.08), ("gp2", 0.10), ("io2", 0.125), ("st1", 0.045), ("sc1", 0.015)):
            out.append(_entry(*ec2, "Storage", f"{prefix}EBS:VolumeUsage.{volume}", f"CreateVolume-{volume.title()}",
                              "GB-Mo", price * factor, "gbmo", "volume", region, product={"volume_api_name": volume}))
        out.append(_entry(*ec2, "Storage Snapshot", f"{prefix}EBS:SnapshotUsage", "CreateSnapshot", "GB-Mo",
                          0.05 * factor, "gbmo", "snapshot", region))
        s3 = ("AmazonS3", "Amazon Simple Storage Service")
        for usage, op, price in (("TimedStorage-ByteHrs", "StandardStorage", 0.023),
                                 ("TimedStorage-SIA-ByteHrs", "StandardIAStorage", 0.0125),
                                 ("TimedStorage-GlacierByteHrs", "GlacierStorage", 0.0036),
                                 ("TimedStorage-INT-FA-ByteHrs", "IntelligentTieringFAStorage", 0.023)):
            out.append(_entry(*s3, "Storage", f"{prefix}{usage}", op, "GB-Mo", price * factor, "gbmo", "bucket", region,
                              product={"storage_class": op}))
        out.append(_entry(*s3, "API Request", f"{prefix}Requests-Tier1", "PutObject", "Requests", 0.000005, "requests",
                          "bucket", region))
        out.append(_entry(*s3, "API Request", f"{prefix}Requests-Tier2", "GetObject", "Requests", 0.0000004,
                          "requests", "bucket", region))
        transfer = {"from_loc": name, "from_region": rid, "servicecode": "AWSDataTransfer", "location": None,
                    "location_type": None}
        out.append(_entry(*ec2, "Data Transfer", f"{prefix}DataTransfer-Out-Bytes", "RunInstances", "GB", 0.09, "gb",
                          "instance", region, to_loc="External", transfer_type="AWS Outbound", **transfer))
        out.append(_entry(*ec2, "Data Transfer", f"{prefix}DataTransfer-In-Bytes", "RunInstances", "GB", 0.0, "gb",
                          "instance", region, to_loc="External", transfer_type="AWS Inbound", **transfer))
        out.append(_entry(*ec2, "Data Transfer", f"{prefix}DataTransfer-Regional-Bytes", "InterZone-Out", "GB", 0.01,
                          "gb", "instance", region, to_loc=name, to_region=rid, transfer_type="IntraRegion",
                          **transfer))
        for other_id, other_code, other_name in REGIONS:
            if other_id == rid:
                continue
            for svc, rkind in ((ec2, "instance"), (s3, "bucket")):
                out.append(_entry(*svc, "Data Transfer", f"{code}-{other_code}-AWS-Out-Bytes", "InterRegion", "GB",
                                  0.02, "gb", rkind, region, to_loc=other_name, to_region=other_id,
                                  transfer_type="InterRegion Outbound", **transfer))
        nat = ("AmazonEC2", "Amazon Elastic Compute Cloud", "NAT Gateway")
        out.append(_entry(*nat, f"{prefix}NatGateway-Hours", "NatGateway", "Hrs", 0.045 * factor, "hours", "nat",
                          region))
        out.append(_entry(*nat, f"{prefix}NatGateway-Bytes", "NatGateway", "GB", 0.045 * factor, "gb", "nat", region))
        lam = ("AWSLambda", "AWS Lambda", "Serverless")
        out.append(_entry(*lam, f"{prefix}Lambda-GB-Second", "Invoke", "Lambda-GB-Second", 0.0000166667, "gbsec",
                          "lambda", region))
        out.append(_entry(*lam, f"{prefix}Request", "Invoke", "Requests", 0.0000002, "requests", "lambda", region))
        rds = ("AmazonRDS", "Amazon Relational Database Service")
        for db, price in (("db.r5.large", 0.25), ("db.r5.xlarge", 0.5), ("db.r6g.2xlarge", 0.86),
                          ("db.m5.large", 0.171), ("db.m6g.xlarge", 0.308), ("db.t3.medium", 0.068)):
            out.append(_entry(*rds, "Database Instance", f"{prefix}InstanceUsage:{db}", "CreateDBInstance:0002",
                              "Hrs", price * factor, "hours", "db", region, itype=db))
        out.append(_entry(*rds, "Database Storage", f"{prefix}RDS:GP3-Storage", "CreateDBInstance:0002", "GB-Mo",
                          0.115 * factor, "gbmo", "db", region))
        ddb = ("AmazonDynamoDB", "Amazon DynamoDB")
        out.append(_entry(*ddb, "Database Storage", f"{prefix}TimedStorage-ByteHrs", "StandardStorage", "GB-Mo",
                          0.25, "gbmo", "table", region))
        out.append(_entry(*ddb, "Amazon DynamoDB PayPerRequest Throughput", f"{prefix}ReadRequestUnits",
                          "GetItem", "ReadRequestUnits", 0.00000025, "requests", "table", region))
        out.append(_entry(*ddb, "Amazon DynamoDB PayPerRequest Throughput", f"{prefix}WriteRequestUnits",
                          "PutItem", "WriteRequestUnits", 0.00000125, "requests", "table", region))
        elb = ("AWSELB", "Elastic Load Balancing", "Load Balancer-Application")
        out.append(_entry(*elb, f"{prefix}LoadBalancerUsage", "LoadBalancing:Application", "Hrs", 0.0225, "hours",
                          "lb", region))
        out.append(_entry(*elb, f"{prefix}LCUUsage", "LoadBalancing:Application", "LCU-Hrs", 0.008, "hours", "lb",
                          region))
        out.append(_entry("AmazonEKS", "Amazon Elastic Container Service for Kubernetes", "Compute",
                          f"{prefix}AmazonEKS-Hours:perCluster", "CreateOperation", "Hours", 0.10, "hours", "cluster",
                          region))
        cw = ("AmazonCloudWatch", "AmazonCloudWatch")
        out.append(_entry(*cw, "Metric", f"{prefix}CW:MetricMonitorUsage", "MetricStorage", "Metrics", 0.3, "count",
                          "none", region))
        out.append(_entry(*cw, "API Request", f"{prefix}CW:Requests", "GetMetricData", "Requests", 0.00001,
                          "requests", "none", region))
        out.append(_entry(*cw, "Data Payload", f"{prefix}DataProcessing-Bytes", "PutLogEvents", "GB", 0.5, "gb",
                          "none", region))
        sm = ("AmazonSageMaker", "Amazon SageMaker", "ML Instance")
        for usage in SAGEMAKER:
            itype = usage.split(":", 1)[1]
            base = itype.removeprefix("ml.")
            fam, size = base.split(".")
            price = FAMILIES.get(fam, (0.05, ""))[0] * VCPUS.get(size, 2) * 1.3
            op = {"Train": "CreateTrainingJob", "Host": "RunInstance", "Notebook": "RunInstance"}.get(
                usage.split(":")[0], "CreateProcessingJob")
            out.append(_entry(*sm, f"{prefix}{usage}", op, "Hrs", price * factor, "hours", "sagemaker", region,
                              itype=itype))
        for model in BEDROCK:
            for direction, price in (("input", 0.003), ("output", 0.015)):
                out.append(_entry("AmazonBedrock", "Amazon Bedrock", "Amazon Bedrock",
                                  f"{prefix}{model}-{direction}-tokens", "InvokeModelInference", "1K tokens", price,
                                  "tokens", "none", region))
        for svc in LONG_TAIL:
            for n, (unit, kind, price) in enumerate((("Hrs", "hours", 0.12), ("GB-Mo", "gbmo", 0.03),
                                                     ("Requests", "requests", 0.0000004), ("GB", "gb", 0.02))):
                out.append(_entry(svc, svc, "Other", f"{prefix}{svc}-Usage{n}", f"Op{n}", unit, price * factor,
                                  kind, "generic", region))
    return out
